"""Image references: ``[registry[:port]/]path[:tag][@sha256:...]``.

Normalised as docker does: a name with no registry lives on ``docker.io``, and a single
path component there gets ``library/``. ``familiar`` gives the short form docker prints.
"""

from __future__ import annotations

import re

from envkit.errors import ReferenceError_
from envkit.values import Value

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST_RE = re.compile(
    r"^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)+"
    r"|\[[0-9a-fA-F:]+\]|[a-zA-Z0-9-]+)(?::[0-9]+)?$"
)


class Reference(Value):
    """A parsed, normalised image reference (ordered by its fields, as a tuple)."""

    __slots__ = ()
    FIELDS = ("registry", "path", "tag", "digest")
    registry: str
    path: str
    tag: str | None
    digest: str | None

    def __new__(
        cls, registry: str, path: str, tag: str | None = None, digest: str | None = None
    ) -> Reference:
        return tuple.__new__(cls, (registry, path, tag, digest))

    @property
    def name(self) -> str:
        """``registry/path`` without tag or digest."""
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    @property
    def familiar(self) -> str:
        """The short form docker shows (``busybox:latest``, ``me/app:1``)."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.path.removeprefix("library/")
        if self.tag:
            name += ":" + self.tag
        if self.digest:
            name += "@" + self.digest
        return name

    def with_tag(self, tag: str) -> Reference:
        """This name with ``tag`` (and no digest)."""
        return Reference(self.registry, self.path, tag, None)


def _looks_like_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost" or part.startswith("[")


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text``; raise :class:`ReferenceError_` naming what is wrong.

    With ``default_tag`` a reference with neither tag nor digest gets ``:latest``.
    """
    original = text
    if not text or text != text.strip():
        raise ReferenceError_(f"invalid image reference {original!r}: empty or padded")
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ReferenceError_(
                f"invalid image reference {original!r}: bad digest {digest!r}",
                hint="a digest is sha256: followed by 64 lowercase hex characters",
            )
    tag: str | None = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ReferenceError_(
                f"invalid image reference {original!r}: bad tag {tag!r}",
                hint="tags use letters, digits, '_', '.' and '-', at most 128 characters",
            )
    parts = text.split("/", 1)
    if len(parts) == 2 and _looks_like_host(parts[0]):
        registry, path = parts
        if not _HOST_RE.match(registry):
            raise ReferenceError_(f"invalid image reference {original!r}: bad registry host")
    else:
        registry, path = DEFAULT_REGISTRY, text
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = "library/" + path
    if not _PATH_RE.match(path):
        raise ReferenceError_(
            f"invalid image reference {original!r}: bad repository name {path!r}",
            hint="names are lowercase letters, digits and separators (. _ - /)",
        )
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)


def is_valid(text: str) -> bool:
    """Whether ``text`` parses as an image reference."""
    try:
        parse(text)
    except ReferenceError_:
        return False
    return True
