"""Safe extraction of OCI layer tars, whiteouts applied.

Nothing is ever written outside the destination: member names are split into components
(leading ``/`` stripped, ``..`` and NUL refused), and every file, link and directory is
created fd-relative from the destination, one ``O_NOFOLLOW`` step at a time
(:mod:`envkit.oci.tarsafe`). A symlink in the layer is stored as it is, but nothing is
ever written through one; hardlinks are made to entries inside the destination only,
never following a symlink. The rules, and what privileged and unprivileged extraction
keep, are in docs/reference/layers.md.

:func:`extract_layer` applies a layer onto ``dest`` in place (onto the layers below it,
already extracted there), so a failure leaves ``dest`` half-applied: extract into a
private copy and rename it when done, or use :func:`extract_layer_atomic`, which does
that for a fresh directory.
"""

from __future__ import annotations

import errno
import functools
import gzip
import io
import lzma
import os
import stat
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import zstandard

from envkit import settings
from envkit.errors import EnvkitError, LayerError
from envkit.oci.compression import detect, open_decompressed
from envkit.oci.hashing_io import HashingReader
from envkit.oci.tarsafe import (
    Parts,
    display,
    lstat_at,
    member_parts,
    open_dir,
    open_dir_lenient,
    remove_at,
)
from envkit.oci.whiteouts import WH_META_PREFIX, WH_OPAQUE, is_overlay_xattr, whiteout_target
from envkit.records import Record, field

#: Name infix of the temporary siblings :func:`extract_layer_atomic` works in; one left
#: behind (the process was killed) is garbage and may be removed.
PARTIAL_INFIX = ".partial-"

#: What one layer may expand to unless ``ENVKIT_MAX_LAYER_SIZE`` says otherwise: the
#: apparent sizes of its files together, and its uncompressed tar.
DEFAULT_MAX_LAYER_SIZE = 64 << 30
#: The longest name or link target an entry may have: Linux's PATH_MAX (with its NUL).
MAX_PATH = 4096

_XATTR_PAX = "SCHILY.xattr."
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_OS_HINTS = {
    errno.ENAMETOOLONG: "a name in the layer is longer than the file system allows "
    "(255 bytes); the layer is corrupt or hostile",
    errno.ENOSPC: "free space on the destination's file system",
    errno.EDQUOT: "free space (quota) on the destination's file system",
    errno.EACCES: "check the permissions of the destination directory",
}
#: What a corrupt tar or compressed stream raises while being read.
_MALFORMED: tuple[type[Exception], ...] = (
    tarfile.TarError,
    EOFError,
    ValueError,
    gzip.BadGzipFile,
    zlib.error,
    lzma.LZMAError,
    zstandard.ZstdError,
)

T = TypeVar("T")

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def max_layer_size() -> int:
    """``ENVKIT_MAX_LAYER_SIZE`` (or ``max_layer_size`` in config.toml) in bytes:
    a number with an optional k, m, g or t (powers of 1024; ``GiB``, ``gb`` accepted)."""
    text = settings.get("max_layer_size", "").strip()
    if not text:
        return DEFAULT_MAX_LAYER_SIZE
    number = text.rstrip("bBiI")
    unit = number[-1:].lower() if number[-1:].isalpha() else ""
    digits = number[: len(number) - len(unit)].strip()
    if unit in _SIZE_UNITS and digits.isdigit() and int(digits) > 0:
        return int(digits) * _SIZE_UNITS[unit]
    raise EnvkitError(
        f"ENVKIT_MAX_LAYER_SIZE={text!r} is not a size",
        hint="give a positive size like 64g, 512m or 1t (the default is 64g)",
    )


def _human(size: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = _SIZE_UNITS[unit[0].lower()]
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


class ExtractReport(Record):
    """What an extraction did.

    ``diff_id`` and ``size`` describe the uncompressed tar (compare ``diff_id`` with the
    image config's ``rootfs.diff_ids``); ``skipped`` lists entries not created, each with
    its reason; ``notes`` sums up what was created with less than the layer asked for
    (ownership, xattrs, set-id bits).
    """

    diff_id: str = ""
    size: int = 0
    compression: str = ""
    entries: int = 0
    whiteouts: int = 0
    opaque_dirs: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def extract_layer(
    stream: BinaryIO, dest: Path, *, unprivileged: bool | None = None, layer: str | None = None
) -> ExtractReport:
    """Extract the layer tar in ``stream`` (compression detected) into ``dest``.

    ``dest`` is created when missing; content already there is the layers below and
    whiteouts apply to it. Privileged extraction (default when running as root,
    including root of a user namespace) restores owners, set-id bits and
    ``trusted.``/``security.`` xattrs; with ``unprivileged`` (default for other users)
    files belong to the caller and set-id bits are dropped. Device nodes are never
    created (listed in ``skipped``); fifos are. Sparse entries (GNU tar's formats) are
    written sparse. A layer whose files (apparent sizes) or uncompressed tar exceed
    :func:`max_layer_size` is refused.
    Raises :class:`LayerError` for a malformed, hostile or oversized layer; its message
    starts with ``layer <digest>`` (``layer``, else the digest of a blob opened from a
    store's ``blobs/<algorithm>/<hex>``), else with ``dest``.
    """
    return _extract(stream, dest, unprivileged, _label(stream, dest, layer))


def _extract(stream: BinaryIO, dest: Path, unprivileged: bool | None, where: str) -> ExtractReport:
    privileged = os.geteuid() == 0 if unprivileged is None else not unprivileged
    cap = max_layer_size()
    head = stream.read(8)
    kind = detect(head)
    plain = _CappedReader(
        open_decompressed(cast(BinaryIO, _Prefixed(head, stream)), kind), cap, where
    )
    report = ExtractReport(compression=kind or "none")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise LayerError(
            f"{dest}: cannot extract a layer here: {exc.strerror}",
            hint="pass a writable directory",
        ) from None
    extractor = _Extractor(root_fd, privileged, report, cap, where)
    try:
        extractor.run(cast(BinaryIO, plain))
        plain.drain()
    except LayerError:
        raise
    except _MALFORMED as exc:
        if _truncated(exc):
            what = "ends early (truncated blob)"
        elif kind is not None and plain.size == 0:  # zstd reads a cut first block as EOF
            what = f"decompresses to nothing ({kind}: truncated or corrupt blob)"
        else:
            what = "is corrupt or not a tar"
        raise LayerError(
            f"{where}: the layer {what}: {exc}",
            hint="the blob is damaged or not a layer: pull or load the image again "
            "(`envkit fsck` checks every blob in the store against its digest)",
        ) from None
    except OSError as exc:
        name = extractor.current
        shown = name if len(name) <= 120 else name[:120] + "..."
        raise LayerError(
            f"{where}: cannot extract layer entry {shown!r}: {exc.strerror or exc}",
            hint=_OS_HINTS.get(
                exc.errno or 0, "check free space and permissions of the destination"
            ),
        ) from None
    finally:
        extractor.close()
    report.diff_id = plain.digest
    report.size = plain.size
    return report


def extract_layer_atomic(
    stream: BinaryIO, dest: Path, *, unprivileged: bool | None = None, layer: str | None = None
) -> ExtractReport:
    """Extract into a temporary sibling of ``dest``, then rename it to ``dest``.

    ``dest`` must not exist (an empty directory is replaced). After a crash at any
    moment ``dest`` is either absent or complete; a leftover sibling named
    ``.<dest name>.partial-*`` is garbage. A failed extraction removes its sibling.
    """
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise LayerError(
            f"{dest}: already exists and is not empty",
            hint="extract into a new path, or remove the old one first",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{PARTIAL_INFIX}", dir=dest.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 is not what a fresh root should have
        report = _extract(stream, tmp, unprivileged, _label(stream, dest, layer))
        os.rename(tmp, dest)
    except BaseException:
        parent_fd = os.open(tmp.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            remove_at(parent_fd, tmp.name)
        finally:
            os.close(parent_fd)
        raise
    return report


def _label(stream: BinaryIO, dest: Path, layer: str | None) -> str:
    """How errors name the layer: ``layer <digest>`` when known, else ``dest``."""
    if layer:
        return f"layer {layer}"
    name = getattr(stream, "name", None)
    if isinstance(name, str):
        path = Path(name)
        if path.parent.parent.name == "blobs":  # a store's blobs/<algorithm>/<hex>
            return f"layer {path.parent.name}:{path.name}"
    return str(dest)


def _truncated(exc: BaseException) -> bool:
    """Whether a read error means the data stopped early (rather than being wrong)."""
    if isinstance(exc, EOFError):
        return True
    text = str(exc).lower()
    return isinstance(exc, tarfile.ReadError | zstandard.ZstdError) and (
        "unexpected end" in text or "truncated" in text or "premature" in text
    )


def _shorten(name: str) -> str:
    return name if len(name) <= 120 else name[:120] + "..."


class _CappedReader(HashingReader):
    """The uncompressed tar, hashed and counted; refused past ``cap`` bytes (a
    decompression bomb, padding or trailing data included: all of it is hashed)."""

    def __init__(self, stream: BinaryIO, cap: int, where: str) -> None:
        super().__init__(stream)
        self._cap = cap
        self._where = where

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = super().readinto(buffer)
        if self.size > self._cap:
            raise _too_large(self._where, self._cap, "its uncompressed tar")
        return n


def _too_large(where: str, cap: int, what: str) -> LayerError:
    return LayerError(
        f"{where}: the layer expands to more than {_human(cap)} ({what}; ENVKIT_MAX_LAYER_SIZE)",
        hint="if you trust the image, set ENVKIT_MAX_LAYER_SIZE higher (e.g. 128g; "
        f"the default is {_human(DEFAULT_MAX_LAYER_SIZE).replace(' GiB', 'g')})",
    )


class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream`` (detection needs no seek or peek).

    Closing it leaves ``stream`` open: the caller owns that.
    """

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            data, self._head = self._head[: len(buffer)], self._head[len(buffer) :]
        else:
            data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Extractor:
    """One layer applied to one destination."""

    def __init__(
        self, root_fd: int, privileged: bool, report: ExtractReport, cap: int, where: str
    ) -> None:
        self.root_fd = root_fd
        self.privileged = privileged
        self.report = report
        self.cap = cap
        self.where = where
        #: The apparent sizes of the regular files written so far.
        self.expanded = 0
        self.current = ""
        # Paths this layer created (implicit parents included): an opaque marker or a
        # whiteout hides lower content only.
        self.ours: set[Parts] = set()
        # Directory metadata is applied last: creating children changes mtimes, and a
        # read-only mode would stop an unprivileged extractor from creating them.
        self.dir_meta: dict[Parts, tarfile.TarInfo] = {}
        self.restore_modes: dict[Parts, int] = {}
        self.issues: Counter[str] = Counter()
        self._parent_cache: tuple[Parts, int] | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def run(self, plain: BinaryIO) -> None:
        with tarfile.open(fileobj=plain, mode="r|") as tar:
            for member in tar:
                self.current = member.name
                self.report.entries += 1
                self._member(tar, member)
        self.current = ""
        self._finish()

    # -- dispatch ---------------------------------------------------------------------

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        for what, text in (("name", member.name), ("link target", member.linkname)):
            length = len(os.fsencode(text))
            if length >= MAX_PATH:
                raise LayerError(
                    f"{self.where}: layer entry {_shorten(member.name)!r}: its {what} is "
                    f"{length} bytes long, longer than {MAX_PATH} bytes (PATH_MAX) allows",
                    hint="the layer is corrupt or hostile",
                )
        parts = member_parts(member.name)
        if not parts:
            if not member.isdir():
                raise LayerError(
                    f"layer entry {member.name!r} names the root but is not a directory",
                    hint="the layer is corrupt or hostile",
                )
            self.dir_meta[()] = member
            return
        parent, leaf = parts[:-1], parts[-1]
        if any(part.startswith(WH_META_PREFIX) for part in parent):
            self.report.skipped.append(f"{display(parts)}: aufs metadata, ignored")
            return
        if leaf == WH_OPAQUE:
            self._opaque(parent)
            return
        target = whiteout_target(leaf)
        if target is not None:
            self._whiteout(parent, target, member.name)
            return
        if leaf.startswith(WH_META_PREFIX):
            self.report.skipped.append(f"{display(parts)}: aufs metadata, ignored")
            return
        if member.isdir():
            self._directory(parts, member)
        elif member.isreg():
            self._regular(parts, member, tar)
        elif member.islnk():
            self._hardlink(parts, member)
        elif member.issym():
            self._symlink(parts, member)
        elif member.isfifo() or member.ischr() or member.isblk():
            self._special(parts, member)
        else:
            self.report.skipped.append(f"{display(parts)}: unknown tar type {member.type!r}")

    # -- directories we write into ------------------------------------------------------

    def _drop_cache(self) -> None:
        if self._parent_cache is not None:
            os.close(self._parent_cache[1])
            self._parent_cache = None

    def _parent(self, parent: Parts) -> int:
        """An fd of directory ``parent`` (created when missing); owned by the cache."""
        if self._parent_cache is not None and self._parent_cache[0] == parent:
            return self._parent_cache[1]
        self._drop_cache()
        for depth in range(1, len(parent) + 1):
            # Parents made here are this layer's, so an opaque marker keeps them.
            if parent[:depth] not in self.ours and self._missing(parent[:depth]):
                self.ours.add(parent[:depth])
        fd = self._writable(parent, lambda: open_dir(self.root_fd, parent, create=True))
        assert fd is not None
        self._parent_cache = (parent, fd)
        return fd

    def _missing(self, parts: Parts) -> bool:
        try:
            fd = open_dir_lenient(self.root_fd, parts[:-1])
        except PermissionError:  # an unreadable lower directory: it exists
            return False
        if fd is None:
            return True
        try:
            return lstat_at(fd, parts[-1]) is None
        finally:
            os.close(fd)

    def _writable(self, parent: Parts, action: Callable[[], T]) -> T:
        """Run ``action``; unprivileged, retry once after making a read-only ancestor
        directory from a lower layer writable (its mode is restored at the end)."""
        try:
            return action()
        except PermissionError:
            if self.privileged or not self._unlock(parent):
                raise
            return action()

    def _unlock(self, parent: Parts) -> bool:
        changed = False
        for depth in range(len(parent) + 1):
            # Opened as parent + lstat, never as the directory itself: a 0000
            # directory cannot be opened until it has been made accessible.
            path = parent[:depth]
            if not path:
                changed |= self._add_owner_rwx(path, os.fstat(self.root_fd), self.root_fd, None)
                continue
            above = open_dir_lenient(self.root_fd, path[:-1])
            if above is None:
                break
            try:
                st = lstat_at(above, path[-1])
                if st is None or not stat.S_ISDIR(st.st_mode):
                    break
                changed |= self._add_owner_rwx(path, st, above, path[-1])
            finally:
                os.close(above)
        return changed

    def _add_owner_rwx(self, path: Parts, st: os.stat_result, fd: int, name: str | None) -> bool:
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o700 == 0o700:
            return False
        self.restore_modes.setdefault(path, mode)
        if name is None:
            os.fchmod(fd, mode | 0o700)
        else:
            # Just lstat'ed as a directory, and nothing else writes here: no symlink race.
            os.chmod(name, mode | 0o700, dir_fd=fd)
        return True

    def _create(self, parts: Parts, make: Callable[[int], T]) -> T:
        """Replace whatever is at ``parts`` by what ``make(parent_fd)`` creates."""
        dirfd = self._parent(parts[:-1])

        def attempt() -> T:
            self._replace(dirfd, parts)
            return make(dirfd)

        result = self._writable(parts[:-1], attempt)
        self.ours.add(parts)
        return result

    def _clear_leaf(self, dirfd: int, parts: Parts) -> os.stat_result | None:
        """Remove what is at ``parts`` unless it is a directory; returns its old stat."""
        existing = lstat_at(dirfd, parts[-1])
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            os.unlink(parts[-1], dir_fd=dirfd)
        return existing

    def _replace(self, dirfd: int, parts: Parts) -> None:
        """Make room for a non-directory at ``parts``: whatever is there goes."""
        existing = self._clear_leaf(dirfd, parts)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            self._drop_cache_below(parts)
            remove_at(dirfd, parts[-1])

    def _drop_cache_below(self, parts: Parts) -> None:
        cached = self._parent_cache
        if cached is not None and cached[0][: len(parts)] == parts:
            self._drop_cache()

    # -- entries ----------------------------------------------------------------------

    def _directory(self, parts: Parts, member: tarfile.TarInfo) -> None:
        dirfd = self._parent(parts[:-1])

        def attempt() -> None:
            existing = self._clear_leaf(dirfd, parts)
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(parts[-1], 0o700, dir_fd=dirfd)

        self._writable(parts[:-1], attempt)
        self.ours.add(parts)
        self.dir_meta[parts] = member

    def _regular(self, parts: Parts, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self.expanded += max(member.size, 0)
        if self.expanded > self.cap:
            raise _too_large(self.where, self.cap, f"its files, at entry {_shorten(member.name)!r}")
        segments = self._sparse_map(member, tar) if member.sparse is not None else None
        fd = self._create(parts, lambda dirfd: os.open(parts[-1], _O_NEW_FILE, 0o600, dir_fd=dirfd))
        try:
            if segments is not None:
                self._write_sparse(fd, member, segments, tar)
            else:
                source = tar.extractfile(member)
                if source is not None:
                    while chunk := source.read(_CHUNK):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view) :]
            self._apply(member, parts, fd=fd)
        finally:
            os.close(fd)

    def _sparse_map(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> list[tuple[int, int]]:
        """The data segments of a GNU sparse entry (any of GNU tar's formats, as
        tarfile reads them), checked: in order, apart, inside the file, and no more
        data than the entry holds (tarfile itself would loop or read past it)."""
        problem = ""
        segments = []
        end = 0
        # typeshed says int; tarfile sets a list of (offset, length) pairs.
        for offset, length in cast("list[tuple[int, int]]", member.sparse or []):
            if offset < 0 or length < 0 or offset + length > member.size:
                problem = f"segment {offset}+{length} outside the file's {member.size} bytes"
                break
            if length == 0:  # GNU tar ends a map with (size, 0); old GNU pads with (0, 0)
                continue
            if offset < end:
                problem = f"segment at {offset} overlaps or precedes the one before"
                break
            segments.append((offset, length))
            end = offset + length
        stored = tar.offset - member.offset_data  # up to the next header
        if not problem and sum(length for _, length in segments) > stored:
            problem = f"{sum(n for _, n in segments)} bytes of data, the entry holds {stored}"
        if problem:
            raise LayerError(
                f"{self.where}: layer entry {_shorten(member.name)!r} has an invalid sparse "
                f"map ({problem})",
                hint="the layer is corrupt or hostile",
            )
        return segments

    def _write_sparse(
        self,
        fd: int,
        member: tarfile.TarInfo,
        segments: list[tuple[int, int]],
        tar: tarfile.TarFile,
    ) -> None:
        """Each data segment written at its offset; holes are left unwritten (they read
        as zeros and take no space), and the size set last."""
        # The segments are stored back to back: read them as one plain entry.
        stored = tarfile.TarInfo(member.name)
        stored.offset_data = member.offset_data
        stored.size = sum(length for _, length in segments)
        source = tar.extractfile(stored)
        assert source is not None
        for offset, length in segments:
            while length:
                chunk = source.read(min(_CHUNK, length))
                if not chunk:
                    raise tarfile.ReadError("unexpected end of data")
                view = memoryview(chunk)
                while view:
                    written = os.pwrite(fd, view, offset)
                    offset += written
                    view = view[written:]
                length -= len(chunk)
        os.ftruncate(fd, member.size)

    def _hardlink(self, parts: Parts, member: tarfile.TarInfo) -> None:
        target = member_parts(member.linkname, "hardlink target")
        if not target or target == parts:
            raise LayerError(
                f"layer hardlink {member.name!r} -> {member.linkname!r} has no valid target",
                hint="the layer is corrupt or hostile",
            )
        target_dir = open_dir(self.root_fd, target[:-1])
        try:
            found = lstat_at(target_dir, target[-1]) if target_dir is not None else None
            if found is None or stat.S_ISDIR(found.st_mode):
                raise LayerError(
                    f"layer hardlink {member.name!r} -> {member.linkname!r}: the target is "
                    + ("a directory" if found is not None else "not in the layer or below it"),
                    hint="hardlinks must point to a file written earlier inside the root",
                )
            source_dir = cast(int, target_dir)
            # follow_symlinks=False: a link to a symlink is another symlink, never its target.
            self._create(
                parts,
                lambda dirfd: os.link(
                    target[-1],
                    parts[-1],
                    src_dir_fd=source_dir,
                    dst_dir_fd=dirfd,
                    follow_symlinks=False,
                ),
            )
        finally:
            if target_dir is not None:
                os.close(target_dir)

    def _symlink(self, parts: Parts, member: tarfile.TarInfo) -> None:
        if "\x00" in member.linkname:
            raise LayerError(f"layer symlink {member.name!r} has a NUL byte in its target")
        self._create(parts, lambda dirfd: os.symlink(member.linkname, parts[-1], dir_fd=dirfd))
        self._apply(member, parts, dirfd=self._parent(parts[:-1]), symlink=True)

    def _special(self, parts: Parts, member: tarfile.TarInfo) -> None:
        if not member.isfifo():
            # Character and block devices are never created, privileged or not: a node in
            # a snapshot would open the host's device to any user who can reach it, and
            # in a container it is useless (a user namespace's mounts are nodev, and the
            # runtime provides /dev itself). As moby's and containers/storage's
            # pkg/archive do in a user namespace (createTarFile: "cannot create devices
            # in a userns"): whatever the lower layers had at the path goes, nothing is
            # created. 0/0 devices included: in a layer tar a deletion is a .wh. entry;
            # an overlay upper's 0/0 whiteouts become .wh. entries when a layer is
            # written (layer_writer), never devices.
            self._create(parts, lambda dirfd: None)
            self.report.skipped.append(f"{display(parts)}: device node, not created")
            return
        self._create(parts, lambda dirfd: os.mknod(parts[-1], stat.S_IFIFO | 0o600, dir_fd=dirfd))
        self._apply(member, parts, dirfd=self._parent(parts[:-1]))

    # -- whiteouts --------------------------------------------------------------------

    def _whiteout(self, parent: Parts, target: str, name: str) -> None:
        if target in ("", ".", "..") or "/" in target:
            raise LayerError(
                f"layer whiteout {name!r} names no valid entry",
                hint="the layer is corrupt or hostile",
            )
        self.report.whiteouts += 1
        parts = (*parent, target)
        if parts in self.ours:
            return  # a whiteout hides lower layers' content, never its own layer's
        dirfd = open_dir(self.root_fd, parent)
        if dirfd is None:
            return
        try:
            self._drop_cache_below(parts)
            self._writable(parent, lambda: remove_at(dirfd, target))
        finally:
            os.close(dirfd)

    def _opaque(self, parent: Parts) -> None:
        self.report.opaque_dirs += 1
        top = os.dup(self._parent(parent))
        self.ours.add(parent)
        self._drop_cache()
        # Walk the directory: drop every entry this layer did not write; descend into
        # this layer's directories, which may have been merged onto lower ones.
        pending: list[tuple[Parts, int]] = [(parent, top)]
        try:
            while pending:
                path, fd = pending.pop()
                try:
                    for name in os.listdir(fd):
                        child = (*path, name)
                        if child not in self.ours:
                            self._writable(path, functools.partial(remove_at, fd, name))
                            continue
                        child_fd = open_dir_lenient(fd, (name,))
                        if child_fd is not None:
                            pending.append((child, child_fd))
                finally:
                    os.close(fd)
        finally:
            for _, fd in pending:
                os.close(fd)

    # -- metadata ---------------------------------------------------------------------

    def _apply(
        self,
        member: tarfile.TarInfo,
        parts: Parts,
        *,
        fd: int | None = None,
        dirfd: int | None = None,
        symlink: bool = False,
    ) -> None:
        """Owner, mode, xattrs, mtime, in that order (chown clears set-id bits and
        file capabilities)."""
        owned = False
        if self.privileged:
            try:
                if fd is not None:
                    os.fchown(fd, member.uid, member.gid)
                else:
                    os.chown(parts[-1], member.uid, member.gid, dir_fd=dirfd, follow_symlinks=False)
                owned = True
            except OSError as exc:  # EINVAL: the id is not mapped in this user namespace
                self.issues[f"ownership not restored ({exc.strerror})"] += 1
        if not symlink:
            mode = stat.S_IMODE(member.mode)
            if not owned and not member.isdir() and mode & (stat.S_ISUID | stat.S_ISGID):
                mode &= ~(stat.S_ISUID | stat.S_ISGID)
                self.issues["set-id bits dropped (file owned by the extractor)"] += 1
            if fd is not None:
                os.fchmod(fd, mode)
            else:
                # The entry was just created by us and is no symlink: following is safe.
                os.chmod(parts[-1], mode, dir_fd=dirfd)
        self._xattrs(member, fd if fd is not None else f"/proc/self/fd/{dirfd}/{parts[-1]}")
        mtime_ns = int(member.mtime * 1_000_000_000)
        try:
            if fd is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            else:
                os.utime(parts[-1], ns=(mtime_ns, mtime_ns), dir_fd=dirfd, follow_symlinks=False)
        except (OSError, OverflowError, ValueError):
            self.issues["mtime out of range, not set"] += 1

    def _xattrs(self, member: tarfile.TarInfo, target: int | str) -> None:
        for key, value in sorted(member.pax_headers.items()):
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX) :]
            if is_overlay_xattr(name):
                # Would steer overlayfs when this tree becomes a lower layer.
                self.issues[f"xattr {name} refused (overlayfs bookkeeping)"] += 1
                continue
            try:
                os.setxattr(
                    target,
                    name,
                    value.encode("utf-8", "surrogateescape"),
                    follow_symlinks=isinstance(target, int),  # an fd refuses False
                )
            except OSError as exc:
                self.issues[f"xattr {name} not set ({exc.strerror})"] += 1

    def _finish(self) -> None:
        self._drop_cache()
        # Deepest first: a directory's mtime is final once its children are done.
        for parts in sorted(self.dir_meta, key=len, reverse=True):
            self.restore_modes.pop(parts, None)
            fd = open_dir_lenient(self.root_fd, parts)
            if fd is None:
                continue  # replaced or whited out later in the layer
            try:
                self._apply(self.dir_meta[parts], parts, fd=fd)
            finally:
                os.close(fd)
        # Deepest first: a restored 0000 parent would lock its children out.
        for parts, mode in sorted(self.restore_modes.items(), key=lambda i: -len(i[0])):
            fd = open_dir_lenient(self.root_fd, parts)
            if fd is not None:
                os.fchmod(fd, mode)
                os.close(fd)
        for issue, count in sorted(self.issues.items()):
            self.report.notes.append(f"{issue}: {count} entr{'y' if count == 1 else 'ies'}")
