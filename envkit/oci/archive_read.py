"""Loading image archives into the store: OCI archives and ``docker save`` archives.

The archive is read once, as a stream (a file, a pipe or stdin; plain, gzip, zstd, xz or
bzip2): every blob goes straight into the store while it is hashed, the small metadata
files (``index.json``, ``manifest.json``...) are kept in memory. Only when the whole
archive has been read and every blob an image needs has been verified are its manifests
registered and its refs tagged, so a corrupt or truncated archive leaves no tag behind
(the blobs written before the failure are unreferenced; ``envkit prune`` removes them).
"""

from __future__ import annotations

import io
import json
import platform as _platform
import posixpath
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from envkit.errors import ArchiveError, DigestMismatchError, ReferenceError_, StoreError
from envkit.oci import compression
from envkit.oci.reference import parse as parse_ref
from envkit.oci.types import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Index,
    Manifest,
    Platform,
)
from envkit.records import Record, Value, field
from envkit.settings import SPACE_ERRNOS, storage_error

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store

_BLOB_RE = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
#: Files read into memory rather than into the store: layout and docker metadata.
_METADATA = frozenset({"index.json", "oci-layout", "manifest.json", "repositories"})
#: Legacy (docker < 1.10) per-layer files of a docker archive, not needed to load it.
_LEGACY_LAYER_FILES = frozenset({"json", "VERSION"})
_MAX_METADATA = 16 << 20
_MAX_INDEX_DEPTH = 8


class LoadedImage(Value):
    """One image an archive held, now in the store."""

    manifest: Descriptor
    config_digest: str  # the image id
    refs: tuple[str, ...]  # normalised refs tagged; empty when the archive named none


class ArchiveContents(Record):
    """What streaming an archive produced: metadata in memory, blobs in the store."""

    name: str  # how errors name the archive (its path, or "<stdin>")
    metadata: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (digest, size)
    links: dict[str, str] = field(default_factory=dict)  # path -> target path
    sizes: dict[str, int] = field(default_factory=dict)  # digest -> size, as ingested

    def file(self, path: str, what: str) -> tuple[str, int]:
        """The stored (digest, size) of the archive member ``path``, following links."""
        seen: set[str] = set()
        path = _clean(path)
        while path in self.links and path not in seen:
            seen.add(path)
            path = self.links[path]
        try:
            return self.files[path]
        except KeyError:
            raise ArchiveError(
                f"{self.name}: {what} {path!r} is not in the archive",
                hint="the archive is incomplete or was truncated; save it again",
            ) from None


def host_platform() -> Platform:
    """The platform images are picked for from a multi-platform index."""
    machine = _platform.machine().lower()
    arch = {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "i386": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)
    variant = "v7" if machine == "armv7l" else ""
    return Platform(os="linux", architecture=arch, variant=variant)


def load_archive(
    source: Path | BinaryIO,
    store: Store,
    *,
    platform: Platform | None = None,
    tag: bool = True,
) -> list[LoadedImage]:
    """Load every image of an OCI or docker archive into ``store``.

    ``source`` is a path or a binary stream (``sys.stdin.buffer``); compression is
    detected. From a multi-platform index the manifest for ``platform`` (default: the
    host's) is kept. With ``tag`` the refs the archive names are tagged, after every
    blob has been verified. Raises :class:`ArchiveError` naming the archive and what is
    wrong with it.
    """
    name = str(source) if isinstance(source, Path) else getattr(source, "name", "<stream>")
    if not isinstance(name, str) or name == "<stdin>" or name.isdigit():
        name = "<stdin>"
    with store.shared():
        if isinstance(source, Path):
            try:
                stream: BinaryIO = open(source, "rb")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise ArchiveError(f"cannot open archive {source}: {exc.strerror}") from None
            with stream:
                contents = read_archive(stream, store, name)
        else:
            contents = read_archive(source, store, name)
        images = resolve_images(contents, store, platform or host_platform())
        if tag:
            for image in images:
                for ref in image.refs:
                    store.tag(ref, image.manifest)
                if not image.refs:
                    store.keep(image.manifest)
    return images


def read_archive(stream: BinaryIO, store: Store, name: str) -> ArchiveContents:
    """Stream the archive: blobs into ``store`` (verified when named by digest)."""
    contents = ArchiveContents(name)
    with _archive_errors(name):
        raw = compression.open_decompressed(_buffered(stream))
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                _read_member(tar, member, contents, store)
    if not contents.metadata and not contents.files:
        raise ArchiveError(f"{name}: empty archive", hint="is this an image archive?")
    return contents


def _read_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, contents: ArchiveContents, store: Store
) -> None:
    path = _clean(member.name)
    if member.issym() or member.islnk():
        # docker-archive writers link duplicate layers (`<id>/layer.tar -> ../<x>.tar`).
        base = posixpath.dirname(path) if member.issym() else ""
        contents.links[path] = _clean(posixpath.join(base, member.linkname))
        return
    if not member.isfile():
        return
    fileobj = tar.extractfile(member)
    if fileobj is None:  # pragma: no cover - isfile() members always have data
        return
    if path in _METADATA or posixpath.basename(path) in _LEGACY_LAYER_FILES:
        if member.size > _MAX_METADATA:
            raise ArchiveError(f"{contents.name}: {path} is {member.size} bytes, too large")
        contents.metadata[path] = fileobj.read()
        return
    match = _BLOB_RE.match(path)
    expected = "sha256:" + match.group(1) if match else None
    try:
        digest, size = store.ingest(cast(BinaryIO, fileobj), expected=expected, size=member.size)
    except DigestMismatchError as exc:
        raise ArchiveError(
            f"{contents.name}: blob {path} does not match its digest ({exc.message})",
            hint="the archive is corrupt; nothing was tagged, `envkit prune` frees its blobs",
        ) from None
    contents.files[path] = (digest, size)
    contents.sizes[digest] = size


def resolve_images(contents: ArchiveContents, store: Store, want: Platform) -> list[LoadedImage]:
    """Register each image's manifest (after checking its blobs); tags are left to the caller."""
    if "index.json" in contents.metadata:
        found = images_from_layout(contents, store, want)
    elif "manifest.json" in contents.metadata:
        # lazy: only docker archives
        from envkit.oci.docker_archive import images_from_docker_manifest

        found = images_from_docker_manifest(contents, store)
    else:
        raise ArchiveError(
            f"{contents.name}: neither index.json (OCI archive) nor manifest.json "
            "(docker archive) found",
            hint="envkit loads OCI archives and `docker save` archives",
        )
    images: list[LoadedImage] = []
    for raw, media_type, refs in found:
        manifest = parse_manifest(raw, contents.name)
        check_closure(manifest, contents, store)
        try:
            desc = store.put_manifest(raw, media_type)
        except StoreError as exc:
            raise ArchiveError(f"{contents.name}: {exc.message}", hint=exc.hint) from None
        images.append(LoadedImage(desc, manifest.config.digest, tuple(refs)))
    return _merge(images)


def images_from_layout(
    contents: ArchiveContents, store: Store, want: Platform
) -> list[tuple[bytes, str, list[str]]]:
    """(manifest bytes, media type, refs) of each image an OCI layout's index.json lists."""
    if "oci-layout" in contents.metadata:
        layout = metadata_json(contents, "oci-layout")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise ArchiveError(
                f"{contents.name}: unsupported OCI layout version {version!r}",
                hint="envkit reads image layout version 1.x",
            )
    index = parse_index(contents.metadata["index.json"], "index.json", contents.name)
    if not index.manifests:
        raise ArchiveError(f"{contents.name}: index.json lists no image")
    found = []
    for entry in index.manifests:
        chosen = select_manifest(entry, contents, store, want)
        refs = refs_from_annotations(entry.annotations, contents.name)
        raw = _blob(chosen.digest, contents, store)
        if len(raw) != chosen.size:
            raise ArchiveError(
                f"{contents.name}: manifest {chosen.digest} is {len(raw)} bytes, "
                f"its descriptor says {chosen.size}",
                hint="the archive's index is corrupt; save it again",
            )
        found.append((raw, chosen.media_type, refs))
    return found


def _merge(images: list[LoadedImage]) -> list[LoadedImage]:
    """One entry per manifest, its refs in archive order without duplicates."""
    by_digest: dict[str, LoadedImage] = {}
    for image in images:
        prev = by_digest.get(image.manifest.digest)
        refs = (*prev.refs, *image.refs) if prev else image.refs
        by_digest[image.manifest.digest] = LoadedImage(
            image.manifest, image.config_digest, tuple(dict.fromkeys(refs))
        )
    return list(by_digest.values())


def parse_manifest(raw: bytes, archive: str) -> Manifest:
    """Parse manifest bytes read from ``archive``; :class:`ArchiveError` when malformed."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or "config" not in data:
            raise ValueError("no config descriptor")
        return Manifest.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{archive}: malformed image manifest: {exc}") from None


def parse_index(raw: bytes, what: str, archive: str) -> Index:
    """Parse an index (index.json or an index blob); :class:`ArchiveError` when malformed."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
            raise ValueError("not an image index")
        return Index.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{archive}: malformed {what}: {exc}") from None


def check_closure(manifest: Manifest, contents: ArchiveContents, store: Store) -> None:
    """Every blob the manifest names is in the store with the announced size."""
    for desc in (manifest.config, *manifest.layers):
        size = contents.sizes.get(desc.digest)
        if size is None:
            if not store.has_blob(desc.digest):
                raise ArchiveError(
                    f"{contents.name}: blob {desc.digest} ({desc.media_type}) is missing "
                    "from the archive",
                    hint="the archive is incomplete or was truncated; save it again",
                )
            size = store.blob_path(desc.digest).stat().st_size
        if size != desc.size:
            raise ArchiveError(
                f"{contents.name}: blob {desc.digest} is {size} bytes, the manifest says "
                f"{desc.size}",
                hint="the archive is corrupt; save it again",
            )


def refs_from_annotations(annotations: dict[str, str], archive: str) -> list[str]:
    """The normalised ref an index.json entry names, if any.

    ``io.containerd.image.name`` (docker, containerd) is a full name and wins; then
    ``org.opencontainers.image.ref.name`` is read as a reference, as podman and skopeo
    write it (``busybox:1``, ``docker.io/library/busybox:1``).
    """
    text = annotations.get(ANNOTATION_IMAGE_NAME) or annotations.get(ANNOTATION_REF_NAME)
    if not text:
        return []
    try:
        return [str(parse_ref(text))]
    except ReferenceError_ as exc:
        raise ArchiveError(
            f"{archive}: image name {text!r} in the archive is not a valid reference",
            hint=exc.hint or exc.message,
        ) from None


def platform_matches(have: Platform, want: Platform) -> bool:
    """Whether a manifest for ``have`` runs on ``want`` (an empty variant matches any)."""
    if (have.os, have.architecture) != (want.os, want.architecture):
        return False
    return not have.variant or not want.variant or have.variant == want.variant


def select_manifest(
    desc: Descriptor,
    contents: ArchiveContents,
    store: Store,
    want: Platform,
    depth: int = 0,
) -> Descriptor:
    """``desc`` if it is a manifest; from an index, the ``want`` platform's (recursively)."""
    if desc.media_type in MANIFEST_TYPES:
        return desc
    if desc.media_type not in INDEX_TYPES:
        raise ArchiveError(
            f"{contents.name}: index entry {desc.digest} has unsupported media type "
            f"{desc.media_type!r}",
            hint="envkit loads OCI and docker schema 2 images",
        )
    if depth >= _MAX_INDEX_DEPTH:
        raise ArchiveError(f"{contents.name}: image indexes nested too deep at {desc.digest}")
    index = parse_index(_blob(desc.digest, contents, store), f"index {desc.digest}", contents.name)
    candidates = [d for d in index.manifests if d.platform and platform_matches(d.platform, want)]
    if not candidates:
        unplatformed = [d for d in index.manifests if d.platform is None]
        candidates = unplatformed if len(index.manifests) == 1 else []
    if not candidates:
        have = sorted(
            {
                f"{d.platform.os}/{d.platform.architecture}"
                + (f"/{d.platform.variant}" if d.platform.variant else "")
                for d in index.manifests
                if d.platform is not None
            }
        )
        raise ArchiveError(
            f"{contents.name}: index {desc.digest} has no image for "
            f"{want.os}/{want.architecture} (it has: {', '.join(have) or 'none'})",
            hint="load an archive built for this machine's platform",
        )
    # Prefer an exact variant match over a variant-less one.
    candidates.sort(key=lambda d: d.platform is None or d.platform.variant != want.variant)
    return select_manifest(candidates[0], contents, store, want, depth + 1)


def _blob(digest: str, contents: ArchiveContents, store: Store) -> bytes:
    try:
        return store.read_blob(digest)
    except StoreError as exc:
        raise ArchiveError(
            f"{contents.name}: blob {digest} is missing or corrupt ({exc.message})",
            hint="the archive is incomplete or was truncated; save it again",
        ) from None


def metadata_json(contents: ArchiveContents, path: str) -> Any:
    """The parsed JSON of metadata file ``path``; :class:`ArchiveError` when malformed."""
    try:
        return json.loads(contents.metadata[path])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{contents.name}: {path} is not valid JSON: {exc}") from None


def _clean(name: str) -> str:
    path = posixpath.normpath(name.lstrip("/"))
    return "" if path == "." else path


def _buffered(stream: BinaryIO) -> BinaryIO:
    # Compression detection peeks at the first bytes, which needs a buffered stream.
    if hasattr(stream, "peek"):
        return stream
    return cast(BinaryIO, io.BufferedReader(cast(io.RawIOBase, stream)))


def decompression_errors() -> tuple[type[BaseException], ...]:
    """What reading a corrupt or truncated compressed stream raises."""
    # lazy: only to classify a decompression error
    import lzma
    import zlib

    import zstandard

    return (EOFError, OSError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


@contextmanager
def _archive_errors(name: str) -> Iterator[None]:
    """Turn what a broken tar or compressed stream raises into one :class:`ArchiveError`."""
    errors: tuple[type[BaseException], ...] = (tarfile.TarError, *decompression_errors())
    try:
        yield
    except ArchiveError:
        raise
    except StoreError as exc:
        raise ArchiveError(f"{name}: {exc.message}", hint=exc.hint) from None
    except errors as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            if exc.errno in SPACE_ERRNOS:  # a read never fails so: the store is full
                raise storage_error(exc) or exc from None
            raise ArchiveError(f"{name}: cannot read: {exc.strerror}") from None
        detail = str(exc) or type(exc).__name__
        raise ArchiveError(
            f"{name}: archive is corrupt or truncated: {detail}",
            hint="nothing was tagged; check the file (or save it again); "
            "`envkit prune` frees the blobs already read",
        ) from None
