"""A content-addressed store in OCI image-layout format.

On disk (``$ENVKIT_HOME/store``)::

    oci-layout                 {"imageLayoutVersion": "1.0.0"}
    index.json                 one descriptor per ref, ref name in the
                               org.opencontainers.image.ref.name annotation
    blobs/sha256/<hex>         content, named by its digest
    tmp/                       partial writes (removed by fsck --repair / the next writer)
    lock                       flock(2) target

CONTRACT (used by the archive, build and registry code): the method names, arguments and
return types below are stable. Refs are stored as normalised references
(``docker.io/library/busybox:latest``, see :mod:`envkit.oci.reference`); look-ups accept
the familiar form, a full ``sha256:`` manifest digest, or an unambiguous prefix of at least
12 hex characters of the image id (config digest) or the manifest digest, as docker does.

Writes are atomic (temp file in ``tmp/``, fsync, rename, fsync of the directory); every blob
is verified against its digest when written and when read with :meth:`read_blob`.
Concurrency: every operation takes ``lock`` shared; :meth:`prune` and ``fsck --repair``
take it exclusive; index.json updates are read-modify-write under an exclusive lock of
their own, so concurrent envkit processes never lose a tag or corrupt the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from envkit.oci.types import Descriptor, ImageConfig, Manifest


@dataclass(frozen=True)
class ImageRecord:
    """One tagged (or dangling) image, as ``envkit images`` lists it."""

    ref: str  # normalised reference, "" for an image kept only by digest
    manifest: Descriptor
    config_digest: str  # the image id
    size: int  # manifest + config + compressed layers, bytes
    created: str  # the config's "created" field, "" when absent


@dataclass
class FsckReport:
    """What ``fsck`` found; ``repaired`` lists what ``--repair`` removed or fixed."""

    corrupt_blobs: list[str] = field(default_factory=list)  # content != digest
    missing_blobs: list[str] = field(default_factory=list)  # referenced, absent
    partial_files: list[str] = field(default_factory=list)  # leftovers in tmp/
    broken_refs: list[str] = field(default_factory=list)  # ref whose image is incomplete
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.corrupt_blobs or self.missing_blobs or self.partial_files or self.broken_refs
        )


@dataclass
class PruneReport:
    removed_blobs: list[str] = field(default_factory=list)
    freed_bytes: int = 0


class Store:
    """The OCI image layout at ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> Store:
        """The store under ``$ENVKIT_HOME``."""
        from envkit.settings import store_root

        return cls(store_root())

    # -- locking -------------------------------------------------------------------
    def shared(self) -> AbstractContextManager[None]:
        """Hold the store lock shared (any reading or adding operation)."""
        raise NotImplementedError

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the store lock exclusive (prune, repair)."""
        raise NotImplementedError

    # -- blobs -----------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        raise NotImplementedError

    def has_blob(self, digest: str) -> bool:
        raise NotImplementedError

    def read_blob(self, digest: str) -> bytes:
        """The blob's bytes, verified; :class:`DigestMismatchError` when corrupt,
        :class:`StoreError` when absent."""
        raise NotImplementedError

    def open_blob(self, digest: str) -> BinaryIO:
        """A stream of the blob (not verified: callers that stream hash as they go)."""
        raise NotImplementedError

    def write_blob(self, data: bytes, expected: str | None = None) -> Descriptor:
        """Store ``data`` atomically; verify against ``expected`` when given.

        Returns a descriptor with media type ``application/octet-stream`` (callers set
        their own with ``dataclasses.replace``).
        """
        raise NotImplementedError

    def ingest(
        self, stream: BinaryIO, expected: str | None = None, size: int | None = None
    ) -> tuple[str, int]:
        """Stream content into the store, hashing as it goes; returns (digest, size).

        Nothing is visible under ``blobs/`` unless the content matched ``expected``
        (and ``size``, when given).
        """
        raise NotImplementedError

    def blobs(self) -> Iterator[str]:
        """Digests of every blob present."""
        raise NotImplementedError

    # -- images --------------------------------------------------------------------
    def put_manifest(self, raw: bytes, media_type: str) -> Descriptor:
        """Store a manifest (or index) as-is, after checking every blob it references
        is present; returns its descriptor. The raw bytes are kept byte for byte."""
        raise NotImplementedError

    def manifest(self, desc: Descriptor | str) -> Manifest:
        """Parse the manifest with that descriptor or digest."""
        raise NotImplementedError

    def config(self, manifest: Manifest) -> ImageConfig:
        """The image config a manifest points to."""
        raise NotImplementedError

    def tag(self, ref: str, manifest: Descriptor) -> None:
        """Point ``ref`` (any accepted form; normalised) at ``manifest``."""
        raise NotImplementedError

    def untag(self, ref: str) -> Descriptor:
        """Remove ``ref``; returns what it pointed to. :class:`ImageNotFoundError` if absent."""
        raise NotImplementedError

    def resolve(self, ref_or_id: str) -> Descriptor:
        """The manifest descriptor for a ref, manifest digest or id prefix;
        :class:`ImageNotFoundError` (naming what was asked) when unknown,
        :class:`ReferenceError_` when ambiguous."""
        raise NotImplementedError

    def refs(self) -> dict[str, Descriptor]:
        """Every ref and the manifest it points to."""
        raise NotImplementedError

    def images(self) -> list[ImageRecord]:
        """Tagged images, newest first."""
        raise NotImplementedError

    # -- maintenance -------------------------------------------------------------
    def prune(self) -> PruneReport:
        """Remove blobs no ref reaches (and stale tmp files). Takes the lock exclusive."""
        raise NotImplementedError

    def fsck(self, repair: bool = False) -> FsckReport:
        """Check every blob against its digest and every ref's closure; with ``repair``
        remove corrupt blobs, tmp leftovers and refs whose image is incomplete."""
        raise NotImplementedError
