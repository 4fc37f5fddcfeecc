"""A content-addressed store in OCI image-layout format.

On disk (``$ENVKIT_HOME/store``)::

    oci-layout                 {"imageLayoutVersion": "1.0.0"}
    index.json                 one descriptor per ref, ref name in the
                               org.opencontainers.image.ref.name annotation
    blobs/sha256/<hex>         content, named by its digest
    tmp/                       partial writes (removed by prune and fsck --repair)
    lock                       flock(2) target of the store lock
    index.lock                 flock(2) target serialising index.json updates

``skopeo inspect oci:$ENVKIT_HOME/store:docker.io/library/busybox:latest`` reads it.

CONTRACT (used by the archive, build and registry code): the method names, arguments and
return types below are stable. Refs are stored as normalised references
(``docker.io/library/busybox:latest``, see :mod:`envkit.oci.reference`); look-ups accept
the familiar form, a full ``sha256:`` manifest digest, or an unambiguous prefix of at least
12 hex characters of the image id (config digest) or the manifest digest, as docker does.

Writes are atomic (temp file in ``tmp/``, fsync, rename, fsync of the directory); every blob
is verified against its digest when written and when read with :meth:`read_blob`.
Concurrency: every operation takes ``lock`` shared; :meth:`prune`, :meth:`remove` and
``fsck --repair`` take it exclusive; index.json updates are read-modify-write under an
exclusive lock of their own, so concurrent envkit processes never lose a tag or corrupt
the store. Locks are reentrant: an import of several steps (blobs, then
:meth:`put_manifest`, then :meth:`tag`) should run inside one ``with store.shared():`` so
that a concurrent prune cannot collect its blobs before the tag exists.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
from pathlib import Path

from envkit import settings
from envkit.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    EnvkitError,
    ImageNotFoundError,
    ReferenceError_,
    StoreError,
)
from envkit.oci.digest import CHUNK, check_digest, is_digest, new_sha256, sha256_bytes
from envkit.oci.reference import parse
from envkit.oci.types import (
    ANNOTATION_REF_NAME,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    canonical_json,
)
from envkit.records import Record, Value, field
from envkit.store import graph
from envkit.store.atomic import TempFile, atomic_write
from envkit.store.locks import FileLock, lock_for

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager
    from typing import BinaryIO

    from envkit.store.gc import ImageUser

OCTET_STREAM = "application/octet-stream"
LAYOUT_VERSION = "1.0.0"
_ID_PREFIX_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{12,64})$")
_FIX_HINT = "run `envkit fsck --repair`, then load or pull the image again"
#: On an index.json entry without a ref: the image lost its last name to ``rmi -f`` and
#: is kept only while a container uses it (docker calls such an image dangling).
ANNOTATION_DANGLING = "io.envkit.dangling"


class ImageRecord(Value):
    """One tagged (or dangling) image, as ``envkit images`` lists it: ``ref`` the
    normalised reference ("" for an image kept only by digest), ``config_digest`` the
    image id, ``size`` the bytes of manifest, config and compressed layers, ``created``
    the config's "created" field ("" when absent)."""

    ref: str
    manifest: Descriptor
    config_digest: str
    size: int
    created: str


class FsckReport(Record):
    """What ``fsck`` found; ``repaired`` lists what ``--repair`` removed or fixed.

    The lists say what was found (before any repair): ``corrupt_blobs`` (content !=
    digest), ``missing_blobs`` (referenced, absent), ``partial_files`` (leftovers in
    tmp/, stray files), ``resumable`` (interrupted registry downloads,
    ``tmp/pull-*.partial``: not damage; the next pull of that blob resumes from them
    and verifies the digest, and ``prune`` removes them), ``broken_refs`` (refs whose
    image is incomplete), ``layout_errors`` (oci-layout, index.json). ``remaining``
    lists what a check after the repair still found, so :attr:`healthy` is the verdict
    either way.
    """

    corrupt_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    partial_files: list[str] = field(default_factory=list)
    resumable: list[str] = field(default_factory=list)
    broken_refs: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    layout_errors: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    repair_attempted: bool = False

    @property
    def ok(self) -> bool:
        """Whether the check found nothing wrong."""
        return not (
            self.corrupt_blobs
            or self.missing_blobs
            or self.partial_files
            or self.broken_refs
            or self.layout_errors
        )

    @property
    def healthy(self) -> bool:
        """Whether the store is sound now: nothing found, or everything repaired."""
        if self.repair_attempted:
            return not self.remaining
        return self.ok


class PruneReport(Record):
    """What :meth:`Store.prune` removed."""

    removed_blobs: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    removed_tmp: list[str] = field(default_factory=list)


class RemoveReport(Record):
    """What :meth:`Store.remove` did, in the order ``docker rmi`` prints it: refs
    untagged (normalised), blob digests deleted."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    freed_bytes: int = 0


class Store:
    """The OCI image layout at ``root`` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.index_path = self.root / "index.json"
        self.layout_path = self.root / "oci-layout"

    @classmethod
    def default(cls) -> Store:
        """The store under ``$ENVKIT_HOME``."""
        return cls(settings.store_root())

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- locking -------------------------------------------------------------------
    def shared(self) -> AbstractContextManager[None]:
        """Hold the store lock shared (any reading or adding operation)."""
        return self._locked(self._lock.shared)

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the store lock exclusive (prune, remove, repair)."""
        return self._locked(self._lock.exclusive)

    @property
    def _lock(self) -> FileLock:
        # Looked up on each use: after a fork the child must not reuse its parent's lock.
        return lock_for(self.root / "lock")

    @property
    def _index_lock(self) -> FileLock:
        return lock_for(self.root / "index.lock")

    @contextlib.contextmanager
    def _locked(self, take: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
        self._make_dirs()
        with take():
            self._make_files()
            yield

    def _make_dirs(self) -> None:
        try:
            self.blob_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the store at {self.root}: {exc.strerror}",
                hint="set ENVKIT_HOME to a writable directory",
            ) from None

    def _make_files(self) -> None:
        # Created without replacing: a concurrent first use may have written them already.
        if not self.layout_path.exists():
            layout = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
            atomic_write(self.layout_path, layout, self.tmp_dir, replace=False)
        if not self.index_path.exists():
            atomic_write(self.index_path, Index().to_bytes(), self.tmp_dir, replace=False)

    # -- blobs -----------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        return self.blob_dir / check_digest(digest).split(":", 1)[1]

    def has_blob(self, digest: str) -> bool:
        """Whether the blob with ``digest`` is present (not whether it is intact)."""
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        """The blob's bytes, verified; :class:`DigestMismatchError` when corrupt,
        :class:`StoreError` (:class:`BlobNotFoundError`) when absent."""
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._not_found(digest) from None
        actual = sha256_bytes(data)
        if actual != digest:
            raise DigestMismatchError(
                f"blob {digest} in {self.root} is corrupt: its content hashes to {actual}",
                hint=_FIX_HINT,
            )
        return data

    def open_blob(self, digest: str, *, verify: bool = False) -> BinaryIO:
        """A stream of the blob (not verified: callers that stream hash as they go).

        With ``verify=True`` the stream hashes what it reads and raises
        :class:`DigestMismatchError` at the end when the content does not match.
        """
        path = self.blob_path(digest)
        try:
            raw = open(path, "rb", buffering=0)  # noqa: SIM115 - handed to the caller
        except FileNotFoundError:
            raise self._not_found(digest) from None
        if not verify:
            return io.BufferedReader(raw, CHUNK)
        return io.BufferedReader(_VerifyingReader(raw, digest, self.root), CHUNK)

    def write_blob(self, data: bytes, expected: str | None = None) -> Descriptor:
        """Store ``data`` atomically; verify against ``expected`` when given.

        Returns a descriptor with media type ``application/octet-stream`` (callers set
        their own with ``desc.replace(media_type=...)``).
        """
        digest = sha256_bytes(data)
        if expected is not None and check_digest(expected) != digest:
            raise DigestMismatchError(
                f"content written as {expected} hashes to {digest}",
                hint="the source is corrupt or the digest is wrong",
            )
        with self.shared():
            path = self.blob_path(digest)
            if not _same_size(path, len(data)):
                atomic_write(path, data, self.tmp_dir)
        return Descriptor(OCTET_STREAM, digest, len(data))

    def ingest(
        self, stream: BinaryIO, expected: str | None = None, size: int | None = None
    ) -> tuple[str, int]:
        """Stream content into the store, hashing as it goes; returns (digest, size).

        Nothing is visible under ``blobs/`` unless the content matched ``expected``
        (and ``size``, when given). When ``expected`` is already present (with ``size``,
        when given) the stream is not read at all.
        """
        if expected is not None:
            check_digest(expected)
        with self.shared():
            if expected is not None:
                path = self.blob_path(expected)
                present = path.stat().st_size if path.is_file() else None
                if present is not None and (size is None or present == size):
                    return expected, present
            with TempFile(self.tmp_dir, "ingest") as tmp:
                h = new_sha256()
                written = 0
                while chunk := stream.read(CHUNK):
                    written += len(chunk)
                    if size is not None and written > size:
                        raise DigestMismatchError(
                            f"content of {expected or 'a blob'} is longer than the "
                            f"announced {size} bytes",
                            hint="the source is corrupt or the size is wrong",
                        )
                    h.update(chunk)
                    tmp.write(chunk)
                digest = "sha256:" + h.hexdigest()
                if size is not None and written != size:
                    raise DigestMismatchError(
                        f"content of {expected or digest} has {written} bytes, expected {size}",
                        hint="the source was truncated or the size is wrong",
                    )
                if expected is not None and digest != expected:
                    raise DigestMismatchError(
                        f"content announced as {expected} hashes to {digest}",
                        hint="the source is corrupt or the digest is wrong",
                    )
                tmp.commit(self.blob_path(digest))
        return digest, written

    def blobs(self) -> Iterator[str]:
        """Digests of every blob present."""
        try:
            names = sorted(os.listdir(self.blob_dir))
        except FileNotFoundError:
            return
        for name in names:
            digest = "sha256:" + name
            if is_digest(digest):
                yield digest

    def blob_size(self, digest: str) -> int:
        """The size of a present blob, in bytes."""
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise self._not_found(digest) from None

    def _not_found(self, digest: str) -> BlobNotFoundError:
        return BlobNotFoundError(
            f"blob {digest} is not in the store at {self.root}", hint=_FIX_HINT
        )

    # -- images --------------------------------------------------------------------
    def put_manifest(self, raw: bytes, media_type: str) -> Descriptor:
        """Store a manifest (or index) as-is, after checking every blob it references
        is present; returns its descriptor. The raw bytes are kept byte for byte.

        An index needs only one of its manifests present (a single-platform pull).
        """
        digest = sha256_bytes(raw)
        data = graph.parse_document(raw, digest)
        graph.check_kind(data, media_type, digest)
        with self.shared():
            try:
                kids = graph.children(data)
            except (KeyError, TypeError, ValueError) as exc:
                raise StoreError(f"manifest {digest} is malformed: {exc}") from None
            missing = [k.digest for k in kids if not self.has_blob(k.digest)]
            if graph.is_index(data, media_type):
                if kids and len(missing) == len(kids):
                    raise StoreError(
                        f"index {digest}: none of its {len(kids)} manifests is in the store",
                        hint="put at least one platform's manifest before its index",
                    )
            elif missing:
                raise StoreError(
                    f"manifest {digest} references blobs not in the store: " + ", ".join(missing),
                    hint="write the config and every layer before the manifest",
                )
            desc = self.write_blob(raw)
        return desc.replace(media_type=media_type)

    def image_manifest(self, desc: Descriptor | str) -> tuple[Descriptor, Manifest]:
        """The image manifest ``desc`` names, and its descriptor.

        For an index this is the manifest of the host platform (or the only one present).
        """
        digest = desc.digest if isinstance(desc, Descriptor) else check_digest(desc)
        media_type = desc.media_type if isinstance(desc, Descriptor) else ""
        for _ in range(4):  # indexes may nest; a few levels are plenty
            raw = self.read_blob(digest)
            data = graph.parse_document(raw, digest)
            if not graph.is_index(data, media_type):
                try:
                    manifest = Manifest.from_json(data)
                except (KeyError, TypeError, ValueError) as exc:
                    raise StoreError(f"manifest {digest} is malformed: {exc}") from None
                return Descriptor(manifest.media_type, digest, len(raw)), manifest
            chosen = graph.select_platform(graph.children(data), self, digest)
            digest, media_type = chosen.digest, chosen.media_type
        raise StoreError(f"{digest}: indexes nested too deep")

    def manifest(self, desc: Descriptor | str) -> Manifest:
        """Parse the manifest with that descriptor or digest (for an index: the host
        platform's manifest, see :meth:`image_manifest`)."""
        return self.image_manifest(desc)[1]

    def config(self, manifest: Manifest) -> ImageConfig:
        """The image config a manifest points to."""
        digest = manifest.config.digest
        try:
            return ImageConfig.from_bytes(self.read_blob(digest))
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreError(f"image config {digest} is not valid JSON: {exc}") from None

    def tag(self, ref: str, manifest: Descriptor) -> None:
        """Point ``ref`` (any accepted form; normalised) at ``manifest``."""
        parsed = parse(ref)
        if parsed.digest is not None:
            raise ReferenceError_(
                f"cannot tag {ref!r}: a tag cannot contain a digest",
                hint="give a name with an optional :tag, like myapp:1.0",
            )
        name = str(parsed)
        with self.shared():
            if not self.has_blob(manifest.digest):
                raise StoreError(
                    f"cannot tag {name}: manifest {manifest.digest} is not in the store",
                    hint="store the manifest with put_manifest before tagging it",
                )
            entry = Descriptor(
                manifest.media_type,
                manifest.digest,
                manifest.size,
                annotations={ANNOTATION_REF_NAME: name},
                platform=manifest.platform,
            )

            def retag(entries: list[Descriptor]) -> list[Descriptor]:
                kept = [
                    e
                    for e in entries
                    if _ref_of(e) != name and (_ref_of(e) or e.digest != manifest.digest)
                ]
                return [*kept, entry]

            self._update_index(retag)

    def keep(self, manifest: Descriptor, *, dangling: bool = False) -> None:
        """Keep ``manifest`` without a name (an index.json entry with no ref), so that
        ``prune`` spares an image loaded or built without a tag. Does nothing when an
        entry already points at it.

        ``dangling``: the image lost its last name to ``rmi -f`` and is kept only for
        the containers that use it (the entry is annotated :data:`ANNOTATION_DANGLING`);
        ``prune`` removes it once no container does, as ``docker image prune`` removes
        dangling images. Keeping a dangling image again without ``dangling`` (a later
        load or build of it) makes it an image kept for its own sake.
        """
        with self.shared():
            if not self.has_blob(manifest.digest):
                raise StoreError(
                    f"cannot keep manifest {manifest.digest}: it is not in the store",
                    hint="store the manifest with put_manifest first",
                )
            entry = _plain(manifest)
            if dangling:
                entry = entry.replace(
                    annotations={**entry.annotations, ANNOTATION_DANGLING: "true"}
                )

            def add(entries: list[Descriptor]) -> list[Descriptor]:
                same = [e for e in entries if e.digest == manifest.digest]
                if not same:
                    return [*entries, entry]
                if dangling or any(not is_dangling(e) for e in same):
                    return entries
                return [entry if e.digest == manifest.digest else e for e in entries]

            self._update_index(add)

    def untag(self, ref: str) -> Descriptor:
        """Remove ``ref``; returns what it pointed to. :class:`ImageNotFoundError` if absent."""
        name = str(parse(ref))
        found: list[Descriptor] = []

        def drop(entries: list[Descriptor]) -> list[Descriptor]:
            found.extend(e for e in entries if _ref_of(e) == name)
            if not found:
                raise self._unknown(ref)
            return [e for e in entries if _ref_of(e) != name]

        with self.shared():
            self._update_index(drop)
        return _plain(found[0])

    def untag_image(self, digest: str) -> list[str]:
        """Remove every index.json entry pointing at manifest ``digest``; returns the
        refs removed (an entry kept only by digest is removed too but names no ref)."""
        removed: list[str] = []

        def drop(entries: list[Descriptor]) -> list[Descriptor]:
            removed.extend(_ref_of(e) for e in entries if e.digest == digest and _ref_of(e))
            return [e for e in entries if e.digest != digest]

        with self.shared():
            self._update_index(drop)
        return removed

    def resolve(self, ref_or_id: str) -> Descriptor:
        """The manifest descriptor for a ref, manifest digest or id prefix;
        :class:`ImageNotFoundError` (naming what was asked) when unknown,
        :class:`ReferenceError_` when ambiguous."""
        text = ref_or_id
        with self.shared():
            entries = self.entries()
            if is_digest(text):
                found = self._by_digest(text, entries)
                if found is not None:
                    return found
                raise self._unknown(text)
            prefix = _ID_PREFIX_RE.match(text)
            try:
                parsed = parse(text)
            except ReferenceError_:
                if prefix is None:
                    raise
            else:
                if parsed.digest is not None:
                    found = self._by_digest(parsed.digest, entries)
                else:
                    found = self.refs().get(str(parsed))
                if found is not None:
                    return found
            if prefix is not None:
                found = self._by_prefix(prefix.group(1), entries)
                if found is not None:
                    return found
        raise self._unknown(text)

    def _by_digest(self, digest: str, entries: list[tuple[str, Descriptor]]) -> Descriptor | None:
        for _, desc in entries:
            if desc.digest == digest:
                return _plain(desc)
        for _, desc in entries:
            if self._config_digest(desc) == digest:
                return _plain(desc)
        if not self.has_blob(digest):
            return None
        try:
            data = graph.parse_document(self.read_blob(digest), digest)
            manifest_desc, _ = self.image_manifest(digest)
        except StoreError:
            return None
        if graph.is_index(data):
            return Descriptor(str(data.get("mediaType") or ""), digest, self.blob_size(digest))
        return manifest_desc

    def _by_prefix(self, hexpart: str, entries: list[tuple[str, Descriptor]]) -> Descriptor | None:
        matches: dict[str, Descriptor] = {}
        for _, desc in entries:
            ids = [desc.digest, self._config_digest(desc)]
            if any(d.startswith("sha256:" + hexpart) for d in ids if d):
                matches[desc.digest] = _plain(desc)
        if len(matches) > 1:
            raise ReferenceError_(
                f"{hexpart!r} is ambiguous: it matches {len(matches)} images "
                f"({', '.join(sorted(matches))})",
                hint="give more hex characters of the id, or a name",
            )
        return next(iter(matches.values()), None)

    def _config_digest(self, desc: Descriptor) -> str:
        try:
            return self.image_manifest(desc)[1].config.digest
        except StoreError:
            return ""

    def _unknown(self, asked: str) -> ImageNotFoundError:
        return ImageNotFoundError(
            f"no image {asked!r} in the store at {self.root}",
            hint="`envkit images` lists the images; `envkit load` or `envkit pull` adds one",
        )

    def entries(self) -> list[tuple[str, Descriptor]]:
        """Every index.json entry as (normalised ref or ``""``, descriptor), in file order."""
        return [(_ref_of(e), e) for e in self._read_index().manifests]

    def refs(self) -> dict[str, Descriptor]:
        """Every ref and the manifest it points to."""
        return {ref: _plain(desc) for ref, desc in self.entries() if ref}

    def images(self) -> list[ImageRecord]:
        """Tagged images (and images kept only by digest, ``ref == ""``), newest first.

        Images whose content is missing or corrupt are left out; ``fsck`` reports them.
        """
        records: list[ImageRecord] = []
        with self.shared():
            for ref, desc in self.entries():
                try:
                    record = self._record(ref, _plain(desc))
                except StoreError:
                    continue
                records.append(record)
        # datetime is imported by listings only, not by every command that opens the store.
        from datetime import UTC, datetime

        from envkit.store.timestamps import parse_created

        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        records.sort(key=lambda r: r.ref)
        records.sort(key=lambda r: parse_created(r.created) or epoch, reverse=True)
        return records

    def _record(self, ref: str, desc: Descriptor) -> ImageRecord:
        chosen, manifest = self.image_manifest(desc)
        config = self.config(manifest)
        size = manifest.config.size + sum(layer.size for layer in manifest.layers)
        size += chosen.size + (desc.size if desc.digest != chosen.digest else 0)
        created = config.raw.get("created")
        return ImageRecord(
            ref=ref,
            manifest=desc,
            config_digest=manifest.config.digest,
            size=size,
            created=created if isinstance(created, str) else "",
        )

    # -- index.json ----------------------------------------------------------------
    def _read_index(self) -> Index:
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            return Index()
        try:
            return Index.from_json(_json_object(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{self.index_path} is not a valid OCI index: {exc}",
                hint="run `envkit fsck --repair` (it sets a damaged index.json aside)",
            ) from None

    def _update_index(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> None:
        """Read-modify-write index.json under the index lock (hold the store lock first)."""
        with self._index_lock.exclusive():
            index = self._read_index()
            entries = change(list(index.manifests))
            new = Index(manifests=tuple(entries), annotations=index.annotations)
            atomic_write(self.index_path, new.to_bytes(), self.tmp_dir)

    # -- maintenance -------------------------------------------------------------
    def remove(
        self, ref_or_id: str, *, force: bool = False, users: Sequence[ImageUser] = ()
    ) -> RemoveReport:
        """``docker rmi``: untag a ref (or every ref of an image given by id or digest),
        then delete the image's blobs that no remaining ref reaches. Containers in
        ``users`` make it a conflict as in docker (see :func:`envkit.store.gc.remove_image`)."""
        from envkit.store.gc import remove_image  # lazy: gc imports this module; only rmi

        with self.exclusive():
            return remove_image(self, ref_or_id, force=force, users=users)

    def prune(self) -> PruneReport:
        """Remove blobs no ref reaches (and stale tmp files). Takes the lock exclusive."""
        from envkit.store.gc import prune  # lazy: gc imports this module; only prune

        with self.exclusive():
            return prune(self)

    def fsck(self, repair: bool = False) -> FsckReport:
        """Check every blob against its digest and every ref's closure; with ``repair``
        remove corrupt blobs, tmp leftovers and refs whose image is incomplete."""
        from envkit.store.fsck import check, repair_store  # lazy: fsck imports this module

        if repair:
            with self.exclusive():
                return repair_store(self)
        with self.shared():
            return check(self)


class _VerifyingReader(io.RawIOBase):
    """Reads a blob file, hashing it; raises at end of file when the digest differs."""

    def __init__(self, raw: io.FileIO, digest: str, root: Path) -> None:
        self._raw = raw
        self._digest = digest
        self._root = root
        self._hash = new_sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        if n:
            self._hash.update(buffer[:n])
        elif not self._checked:
            self._checked = True
            actual = "sha256:" + self._hash.hexdigest()
            if actual != self._digest:
                raise DigestMismatchError(
                    f"blob {self._digest} in {self._root} is corrupt: "
                    f"its content hashes to {actual}",
                    hint=_FIX_HINT,
                )
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def _json_object(raw: bytes) -> dict[str, object]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _ref_of(entry: Descriptor) -> str:
    """The normalised ref an index.json entry carries, ``""`` for none.

    Entries written by other tools may carry a short name; it is normalised when it
    parses as a reference and kept as written otherwise.
    """
    name = entry.annotations.get(ANNOTATION_REF_NAME, "")
    if not name:
        return ""
    try:
        return str(parse(name))
    except EnvkitError:
        return name


def _plain(entry: Descriptor) -> Descriptor:
    """An index.json entry without its ref (or dangling) annotation: a pointer to the
    manifest."""
    drop = (ANNOTATION_REF_NAME, ANNOTATION_DANGLING)
    annotations = {k: v for k, v in entry.annotations.items() if k not in drop}
    return entry.replace(annotations=annotations)


def is_dangling(entry: Descriptor) -> bool:
    """Whether an index.json entry is an image ``rmi -f`` left unnamed for its
    containers (see :meth:`Store.keep`)."""
    return not _ref_of(entry) and entry.annotations.get(ANNOTATION_DANGLING) == "true"


def _same_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
