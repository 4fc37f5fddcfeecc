"""Built-in image sources: ``ref`` (local store, else a registry) and ``oci-archive``
(Image.load)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from envkit.errors import (
    ArchiveError,
    ImageNotFoundError,
    ReferenceError_,
    RegistryError,
)
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import ImageSource
from envkit.plugins.overrides import override

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.oci.types import Descriptor
    from envkit.store.store import Store


def _param(params: Mapping[str, Any], key: str, kind: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ArchiveError(
            f"image source {kind!r}: parameter {key!r} missing or not a string (got {value!r})",
            hint="an envkit bug if it came from an Image; plugins must pass it",
        )
    return value


class RefSource(ImageSource):
    """An image by ref, manifest digest or id: from the local store, else pulled from its
    registry (``envkit pull``).

    ``params``: ``{"ref": "busybox:1"}``; with ``"digest": "sha256:..."`` too, the
    digest wins (a pinned base), as ``name@digest`` does.
    """

    kind = "ref"

    @override
    def provide(self, params: Mapping[str, Any], store: Store) -> Descriptor:
        digest = params.get("digest")
        ref = params.get("ref")
        wanted = digest if isinstance(digest, str) and digest else _param(params, "ref", "ref")
        try:
            return store.resolve(wanted)
        except ImageNotFoundError as exc:
            remote = _remote_ref(ref, digest)
            if remote is None:
                raise ImageNotFoundError(
                    f"base image {ref or wanted!r} is not in the local store",
                    hint="`envkit pull` or `envkit load` it first",
                ) from exc
            return _pull(remote, ref or wanted, store)


def _remote_ref(ref: object, digest: object) -> str | None:
    """What to pull for a base missing from the store (None: not a registry reference)."""
    from envkit.oci.reference import parse  # lazy for start-up: downward

    if not isinstance(ref, str) or not ref:
        return None
    try:
        parsed = parse(ref)
    except ReferenceError_:
        return None
    if isinstance(digest, str) and digest:
        return f"{parsed.name}@{digest}"
    return str(parsed)


def _pull(remote: str, asked: str, store: Store) -> Descriptor:
    from envkit.registry.pull import pull  # lazy for start-up: requests, downward

    try:
        return pull(remote, store).descriptor
    except RegistryError as exc:
        raise ImageNotFoundError(
            f"base image {asked!r} is not in the local store, and pulling it failed: {exc.message}",
            hint=exc.hint or "`envkit pull` or `envkit load` it first",
        ) from exc


class OciArchiveSource(ImageSource):
    """An image from an archive file (``Image.load("x.tar")``), loaded into the store.

    ``params``: ``{"path": "/abs/x.tar"}``, optionally ``"ref"`` to choose one image of
    an archive holding several. OCI and docker archives are read, compressed or not; the
    archive's refs are tagged, as ``envkit load`` does.
    """

    kind = "oci-archive"

    @override
    def provide(self, params: Mapping[str, Any], store: Store) -> Descriptor:
        # lazy for start-up (this module loads with every plugin manager): downward
        from envkit.oci.archive_read import load_archive
        from envkit.oci.reference import parse

        path = Path(_param(params, "path", self.kind))
        images = load_archive(path, store)
        wanted = params.get("ref")
        if isinstance(wanted, str) and wanted:
            normal = str(parse(wanted))
            for image in images:
                if normal in image.refs:
                    return image.manifest
            named = sorted(parse(r).familiar for image in images for r in image.refs)
            raise ArchiveError(
                f"{path}: no image named {wanted!r} in the archive "
                f"(it has: {', '.join(named) or 'unnamed images only'})",
                hint="pick one of the names it has",
            )
        if len(images) != 1:
            raise ArchiveError(
                f"{path}: the archive holds {len(images)} images, which one is the base?",
                hint='name it: Image.load(path, ref="name:tag")',
            )
        return images[0].manifest


@hookimpl
def envkit_image_sources() -> Sequence[ImageSource]:
    return [RefSource(), OciArchiveSource()]
