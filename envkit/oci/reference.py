"""Image references: ``[registry[:port]/]path[:tag][@digest]``, read as Docker reads them.

The grammar and the normalisation are distribution/reference's (the Go package docker,
containerd and BuildKit use), and agree with its test tables (carried in
``tests/data/distribution_reference``):

* :func:`split` is ``reference.Parse``: the grammar alone, no default registry.
* :func:`parse_normalized` is ``ParseNormalizedNamed``: a name without a registry lives on
  ``docker.io``, and a single path component there gets ``library/``. The first
  component is a registry host when it is ``localhost``, holds a ``.`` or a ``:``, or
  has an uppercase letter (``LOCALDOMAIN/debian``, ``Foo/bar``: names are lowercase, so
  it can only be a host). A 64-hex name is refused (it is an image ID), and so are
  repository paths over 255 characters and host labels starting or ending with ``-``.
* :func:`parse` is ``ParseDockerRef``, what envkit uses everywhere: normalised, ``:latest``
  when there is neither tag nor digest, and the tag dropped when there is a digest
  (``busybox:1.36@sha256:...`` is the image of that digest).

``Reference.familiar`` is ``FamiliarString``: ``docker.io/`` and a ``library/`` with no
further ``/`` after it are dropped (``docker.io/library/foo/bar`` stays
``library/foo/bar``).
"""

from __future__ import annotations

import re

from envkit.errors import ReferenceError_
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    #: A registry host with an optional port (distribution's ``DomainRegexp``).
    DOMAIN_RE: re.Pattern[str]

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"
DEFAULT_TAG = "latest"
OFFICIAL_PREFIX = "library/"
#: The longest repository path (without the registry) distribution accepts.
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"

NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
REFERENCE_RE = re.compile(
    rf"((?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII
)
TAG_RE = re.compile(_TAG, re.ASCII)
IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_SHA256_HEX = re.compile(r"[a-f0-9]{64}")

_HINT_FORMAT = (
    "a reference is [registry[:port]/]name[:tag][@sha256:<64 hex>]; names use lowercase "
    "letters, digits and the separators '.', '_', '__', '-', '/'"
)


class Reference(Value):
    """A parsed, normalised image reference (ordered by its fields, as a tuple)."""

    registry: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/path`` without tag or digest."""
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        return self.name + self._suffix()

    def _suffix(self) -> str:
        out = ""
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    @property
    def familiar_name(self) -> str:
        """The name docker shows, without tag or digest (``busybox``, ``me/app``)."""
        if self.registry != DEFAULT_REGISTRY:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_PREFIX)
        return rest if rest != self.path and "/" not in rest else self.path

    @property
    def familiar(self) -> str:
        """The short form docker shows (``busybox:latest``, ``me/app:1``)."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """This name with ``tag`` (and no digest)."""
        if not TAG_RE.fullmatch(tag):
            raise ReferenceError_(
                f"invalid tag {tag!r} for {self.name}",
                hint="tags use letters, digits, '_', '.' and '-' (not first), at most 128",
            )
        return Reference(self.registry, self.path, tag, None)


class Split(Value):
    """A reference as distribution's ``Parse`` reads it: no default registry, tag and
    digest both kept. ``domain`` is ``""`` when the text names no registry."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """``domain/path`` (just ``path`` without a domain)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path


def _error(original: str, why: str, hint: str = _HINT_FORMAT) -> ReferenceError_:
    return ReferenceError_(f"invalid image reference {original!r}: {why}", hint=hint)


def split(text: str, original: str | None = None) -> Split:
    """Read ``text`` with distribution's reference grammar, without normalising it
    (``reference.Parse``); raise :class:`ReferenceError_` naming what is wrong."""
    shown = text if original is None else original
    if not text:
        raise _error(shown, "repository name must have at least one component")
    found = REFERENCE_RE.fullmatch(text)
    if found is None:
        lower = text.lower()
        if lower != text and REFERENCE_RE.fullmatch(lower):
            raise _error(
                shown,
                "repository name must be lowercase",
                hint="write the repository path in lowercase (a registry host may have capitals)",
            )
        raise _error(shown, "invalid reference format")
    name, tag, digest = found.groups()
    parts = NAME_RE.fullmatch(name)
    assert parts is not None  # the reference grammar embeds the name grammar
    domain, path = parts.group(1) or "", parts.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _error(
            shown,
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters",
            hint="shorten the repository path",
        )
    if digest is not None:
        _check_digest(shown, digest)
    return Split(domain, path, tag, digest)


def _check_digest(shown: str, digest: str) -> None:
    """go-digest's ``Parse``: only sha256 is available here, as 64 lowercase hex."""
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256":
        raise _error(
            shown,
            f"unsupported digest algorithm {algorithm!r}",
            hint="use a sha256: digest, as the image's manifest digest",
        )
    if len(encoded) != 64:
        raise _error(
            shown,
            f"invalid checksum digest length ({len(encoded)} hex characters, sha256 has 64)",
            hint="a digest is sha256: followed by 64 lowercase hex characters",
        )
    if not _SHA256_HEX.fullmatch(encoded):
        raise _error(
            shown,
            "invalid checksum digest format",
            hint="a digest is sha256: followed by 64 lowercase hex characters",
        )


def split_docker_domain(name: str) -> tuple[str, str]:
    """distribution's ``splitDockerDomain``: the registry ``name`` names (``docker.io``
    when none) and the rest, with ``library/`` added to a one-component Docker Hub name."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_REGISTRY, OFFICIAL_PREFIX + name
    if first == LEGACY_REGISTRY:
        domain, remote = DEFAULT_REGISTRY, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_REGISTRY, name
    if domain == DEFAULT_REGISTRY and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote


def parse_normalized(text: str) -> Reference:
    """``ParseNormalizedNamed``: ``text`` normalised to its registry and full path, tag
    and digest kept as written (both may be set, neither may be)."""
    if IDENTIFIER_RE.fullmatch(text):
        raise ReferenceError_(
            f"invalid repository name {text!r}: a 64-character hex string is an image ID, "
            "not a name",
            hint="refer to the image by a name, or by its ID where an ID is accepted",
        )
    if text != text.strip():
        raise _error(text, "spaces around the reference", hint="remove the spaces")
    domain, remainder = split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise _error(
            text,
            f"repository name ({remote}) must be lowercase",
            hint="write the repository path in lowercase (a registry host may have capitals)",
        )
    found = split(f"{domain}/{remainder}", text)
    return Reference(found.domain, found.path, found.tag, found.digest)


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text`` as Docker does (``ParseDockerRef``); raise
    :class:`ReferenceError_` naming what is wrong.

    A reference with both a tag and a digest keeps the digest only. With
    ``default_tag`` a reference with neither gets ``:latest``.
    """
    ref = parse_normalized(text)
    if ref.tag is not None and ref.digest is not None:
        return Reference(ref.registry, ref.path, None, ref.digest)
    if ref.tag is None and ref.digest is None and default_tag:
        return Reference(ref.registry, ref.path, DEFAULT_TAG, None)
    return ref


def parse_any(text: str) -> Reference | str:
    """``ParseAnyReference``: an image ID (64 hex) or a digest as ``sha256:<hex>``,
    anything else as :func:`parse_normalized` reads it."""
    if IDENTIFIER_RE.fullmatch(text):
        return "sha256:" + text
    algorithm, colon, encoded = text.partition(":")
    if colon and algorithm == "sha256" and _SHA256_HEX.fullmatch(encoded):
        return text
    return parse_normalized(text)


def is_valid(text: str) -> bool:
    """Whether ``text`` parses as an image reference."""
    try:
        parse(text)
    except ReferenceError_:
        return False
    return True


if not TYPE_CHECKING:  # type checkers see DOMAIN_RE declared above, and no other name

    def __getattr__(name: str) -> re.Pattern[str]:
        # DOMAIN_RE is compiled on first use: envkit matches whole references only, and
        # every start-up that parses one would pay ~0.2 ms for it.
        if name == "DOMAIN_RE":
            value = globals()[name] = re.compile(_DOMAIN_AND_PORT, re.ASCII)
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
