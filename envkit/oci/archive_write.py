"""Saving images from the store as archives: OCI archive (default) or docker archive.

The output is deterministic: entries in sorted order, owner 0:0, fixed modes, and every
mtime set to ``SOURCE_DATE_EPOCH`` (0 when unset), so saving the same images twice gives
the same bytes. A file is written atomically (a temp file next to it, fsync, rename): a
failed save leaves no partial file. Every blob is re-hashed while it is copied, so a
corrupt store never produces an archive that looks valid.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from envkit.errors import ArchiveError, ReferenceError_, StoreError
from envkit.oci import compression
from envkit.oci.archive_read import decompression_errors
from envkit.oci.digest import CHUNK, hex_of
from envkit.oci.reference import parse as parse_ref
from envkit.oci.types import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    Descriptor,
    Index,
    Manifest,
    canonical_json,
    compression_of,
)
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store

FORMATS = ("oci-archive", "docker-archive")
OCI_LAYOUT = canonical_json({"imageLayoutVersion": "1.0.0"})


class SavedImage(Value):
    """One image written to an archive, and the ref it is named by (``""``: by id)."""

    ref: str
    manifest: Descriptor


def save_archive(
    store: Store,
    images: Sequence[str],
    dest: Path | BinaryIO,
    *,
    format: str = "oci-archive",
) -> list[SavedImage]:
    """Write ``images`` (refs, digests or ids) from ``store`` into an archive at ``dest``.

    ``format`` is ``"oci-archive"`` (an OCI image layout in a tar; each image is named in
    index.json by ``org.opencontainers.image.ref.name`` and ``io.containerd.image.name``,
    as podman, skopeo and docker read them) or ``"docker-archive"`` (what ``docker save``
    writes). ``dest`` is a path (written atomically) or a binary stream.
    """
    if format not in FORMATS:
        raise ArchiveError(
            f"unknown archive format {format!r}", hint=f"use one of: {', '.join(FORMATS)}"
        )
    if not images:
        raise ArchiveError("no image to save", hint="name at least one image")
    with store.shared():
        saved = _resolve(store, images)
        writer = _write_oci if format == "oci-archive" else _write_docker
        if isinstance(dest, Path):
            with atomic_output(dest) as out:
                writer(store, saved, out, dest.parent)
        else:
            writer(store, saved, dest, None)
    return saved


def _resolve(store: Store, names: Sequence[str]) -> list[SavedImage]:
    refs = store.refs()
    saved: list[SavedImage] = []
    for name in names:
        desc = store.resolve(name)
        ref = ""
        try:
            normal = str(parse_ref(name))
        except ReferenceError_:
            normal = ""
        if normal in refs:
            ref = normal
        image = SavedImage(ref, desc)
        if image not in saved:
            saved.append(image)
    return saved


def _write_oci(store: Store, images: list[SavedImage], out: BinaryIO, tmpdir: Path | None) -> None:
    blobs: dict[str, int] = {}
    for image in images:
        _closure(store, image.manifest, blobs)
    entries = []
    for image in images:
        annotations = {}
        if image.ref:
            annotations = {ANNOTATION_REF_NAME: image.ref, ANNOTATION_IMAGE_NAME: image.ref}
        entries.append(
            Descriptor(
                image.manifest.media_type,
                image.manifest.digest,
                image.manifest.size,
                annotations=annotations,
            )
        )
    with DeterministicTar(out) as tar:
        tar.add_dir("blobs")
        tar.add_dir("blobs/sha256")
        for digest in sorted(blobs):
            tar.add_blob(store, f"blobs/sha256/{hex_of(digest)}", digest, blobs[digest])
        tar.add_bytes("index.json", Index(tuple(entries)).to_bytes())
        tar.add_bytes("oci-layout", OCI_LAYOUT)


def _closure(store: Store, desc: Descriptor, blobs: dict[str, int], depth: int = 0) -> None:
    """Add ``desc`` and every blob it reaches to ``blobs`` (digest -> size)."""
    blobs[desc.digest] = desc.size
    if desc.media_type in INDEX_TYPES:
        if depth > 8:
            raise ArchiveError(f"image index {desc.digest} is nested too deep")
        raw = _read(store, desc.digest)
        for child in Index.from_json(json.loads(raw)).manifests:
            _closure(store, child, blobs, depth + 1)
        return
    manifest = _manifest(store, desc)
    for blob in (manifest.config, *manifest.layers):
        blobs[blob.digest] = blob.size


def _write_docker(
    store: Store, images: list[SavedImage], out: BinaryIO, tmpdir: Path | None
) -> None:
    from envkit.oci.docker_archive import DockerImage, docker_image  # lazy: only docker archives

    # docker's unit is the image id: manifests sharing a config are one image.
    by_config: dict[str, tuple[Manifest, list[str]]] = {}
    for image in images:
        if image.manifest.media_type in INDEX_TYPES:
            raise ArchiveError(
                f"{image.ref or image.manifest.digest} is a multi-platform index",
                hint="a docker archive holds single-platform images; use --format oci-archive",
            )
        manifest = _manifest(store, image.manifest)
        _, tags = by_config.setdefault(manifest.config.digest, (manifest, []))
        if image.ref and image.ref not in tags:
            tags.append(image.ref)
    docker_images: list[DockerImage] = []
    for manifest, tags in by_config.values():
        try:
            config = store.config(manifest)
        except StoreError as exc:
            raise ArchiveError(
                f"image {manifest.config.digest}: {exc.message}", hint=exc.hint
            ) from None
        docker_images.append(docker_image(manifest, config, tags))
    configs = {img.config_name: img.config for img in docker_images}
    layers = {layer.name: layer for img in docker_images for layer in img.layers}
    manifest_json = json.dumps(
        [img.manifest_entry() for img in docker_images], separators=(",", ":")
    ).encode()
    with DeterministicTar(out) as tar:
        for name in sorted({*configs, *layers}):
            if name in configs:
                config_desc = configs[name]
                tar.add_blob(store, name, config_desc.digest, config_desc.size)
                continue
            layer = layers[name]
            if compression_of(layer.blob.media_type) == "" and layer.blob.digest == layer.diff_id:
                tar.add_blob(store, name, layer.diff_id, layer.blob.size)
            else:
                tar.add_decompressed(store, name, layer.blob, layer.diff_id, tmpdir)
        tar.add_bytes("manifest.json", manifest_json)


def _manifest(store: Store, desc: Descriptor) -> Manifest:
    try:
        return Manifest.from_bytes(_read(store, desc.digest))
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"manifest {desc.digest} in the store is malformed: {exc}") from None


def _read(store: Store, digest: str) -> bytes:
    try:
        return store.read_blob(digest)
    except StoreError as exc:
        raise ArchiveError(
            f"cannot save: blob {digest}: {exc.message}",
            hint="`envkit fsck` checks the store; pull or load the image again",
        ) from None


class DeterministicTar:
    """A tar stream with reproducible headers: owner 0:0, fixed modes and mtimes."""

    def __init__(self, out: BinaryIO) -> None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        self.mtime = int(epoch) if epoch.isdigit() else 0
        self.tar = tarfile.open(  # noqa: SIM115 - closed by __exit__
            fileobj=_Counting(out), mode="w", format=tarfile.USTAR_FORMAT
        )

    def __enter__(self) -> DeterministicTar:
        return self

    def __exit__(self, *exc: object) -> None:
        # After a failure no end-of-archive marker: a truncated stream must look truncated.
        if exc[0] is None:
            self.tar.close()

    def _info(self, name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.size = size
        info.mtime = self.mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def add_dir(self, name: str) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE))

    def add_bytes(self, name: str, data: bytes) -> None:
        self.tar.addfile(self._info(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))

    def add_blob(self, store: Store, name: str, digest: str, size: int) -> None:
        """Copy a blob from the store, verifying its digest and size as it streams."""
        try:
            blob = store.open_blob(digest)
        except (StoreError, OSError) as exc:
            raise ArchiveError(
                f"cannot save: blob {digest} is missing from the store ({exc})",
                hint="`envkit fsck` checks the store; pull or load the image again",
            ) from None
        with blob:
            actual_size = store.blob_path(digest).stat().st_size
            if actual_size != size:
                raise _corrupt(digest, f"{actual_size} bytes, expected {size}")
            reader = _HashingReader(blob)
            self.tar.addfile(self._info(name, tarfile.REGTYPE, size), reader)
        if reader.digest != digest:
            raise _corrupt(digest, f"content hashes to {reader.digest}")

    def add_decompressed(
        self, store: Store, name: str, blob: Descriptor, diff_id: str, tmpdir: Path | None
    ) -> None:
        """Add a compressed layer blob uncompressed, checking it against ``diff_id``."""
        with tempfile.TemporaryFile(dir=tmpdir) as spool:
            h = hashlib.sha256()
            packed = _HashingReader(store.open_blob(blob.digest))
            buffered = cast(BinaryIO, io.BufferedReader(packed, CHUNK))
            try:
                with packed.stream, compression.open_decompressed(buffered) as raw:
                    while chunk := raw.read(CHUNK):
                        h.update(chunk)
                        spool.write(chunk)
            except decompression_errors() as exc:
                raise _corrupt(blob.digest, f"cannot decompress it: {exc}") from None
            if packed.digest != blob.digest:
                raise _corrupt(blob.digest, f"content hashes to {packed.digest}")
            if "sha256:" + h.hexdigest() != diff_id:
                raise ArchiveError(
                    f"cannot save: layer {blob.digest} uncompresses to "
                    f"sha256:{h.hexdigest()}, its image config says {diff_id}",
                    hint="the image is corrupt; build or pull it again",
                )
            size = spool.tell()
            spool.seek(0)
            self.tar.addfile(self._info(name, tarfile.REGTYPE, size), spool)


class _Counting(io.RawIOBase):
    """A pass-through writer that knows its position, so pipes work as tar output."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._stream.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos


class _HashingReader(io.RawIOBase):
    """Reads through to ``stream`` and hashes what passes."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self._hash.update(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _corrupt(digest: str, detail: str) -> ArchiveError:
    return ArchiveError(
        f"cannot save: blob {digest} in the store is corrupt: {detail}",
        hint="`envkit fsck --repair` removes it; pull or load the image again",
    )


@contextmanager
def atomic_output(dest: Path) -> Iterator[BinaryIO]:
    """A file that appears at ``dest`` only if the block completes (temp + fsync + rename)."""
    dest = dest.absolute()
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise ArchiveError(f"cannot write {dest}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
