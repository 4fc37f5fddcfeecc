"""Deterministic OCI layer tars from a directory or an overlayfs upper directory.

The same tree gives the same ``diff_id`` on any machine: entries are sorted by the bytes
of their names (each directory before its children), written in PAX format with numeric
owners only (no user or group names: those would come from the host's passwd), integer
mtimes clamped to ``SOURCE_DATE_EPOCH`` when set, no atime or ctime, no inode numbers and
no path of the source directory. See docs/reference/layers.md for every rule.

The source is walked with fd-relative calls that never follow a symlink, so a tree that
is changing under the writer (a container still running) cannot make it read a file
outside the tree.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from envkit.errors import LayerError
from envkit.oci.compression import open_compressor
from envkit.oci.hashing_io import HashingWriter
from envkit.oci.types import (
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    Descriptor,
)
from envkit.oci.whiteouts import WH_OPAQUE, WH_PREFIX, is_overlay_xattr, overlay_xattr
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO, Literal

    Compression = Literal["zstd", "gzip", "none"]
else:
    Compression = str  # for type checkers the Literal: annotations are never evaluated

MEDIA_TYPES: dict[str, str] = {
    "zstd": MT_OCI_LAYER_ZSTD,
    "gzip": MT_OCI_LAYER_GZIP,
    "none": MT_OCI_LAYER,
}

#: xattrs never copied into a layer: host labels that differ per machine.
_HOST_XATTRS = frozenset({"security.selinux"})

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class LayerInfo(Value):
    """What a manifest and an image config need to know about a written layer.

    ``digest`` and ``size`` describe the bytes written (compressed); ``diff_id`` is the
    sha256 of the uncompressed tar, the value of the config's ``rootfs.diff_ids``.
    ``skipped`` names source entries a tar cannot hold (sockets).
    """

    digest: str
    size: int
    diff_id: str
    media_type: str
    skipped: tuple[str, ...] = ()

    def descriptor(self) -> Descriptor:
        """The manifest's descriptor of this layer."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size)


def source_date_epoch_from_env() -> int | None:
    """``SOURCE_DATE_EPOCH`` from the environment, or None when unset or empty."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise LayerError(
            f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds since 1970",
            hint="set it to a non-negative integer, e.g. $(git log -1 --format=%ct), or unset it",
        )
    return value


def write_layer(
    src: Path,
    out: BinaryIO,
    *,
    compression: Compression = "zstd",
    source_date_epoch: int | None = None,
    overlay_upper: bool = False,
    level: int | None = None,
) -> LayerInfo:
    """Write the content of directory ``src`` to ``out`` as a deterministic layer tar.

    ``source_date_epoch`` (default: the ``SOURCE_DATE_EPOCH`` environment variable)
    clamps every mtime to at most that value. With ``overlay_upper`` the directory is
    read as an overlayfs upper dir: 0/0 character devices become ``.wh.<name>`` entries
    and opaque directories get a ``.wh..wh..opq`` entry. The digests are computed while
    streaming; ``out`` is written sequentially and left open.
    """
    if compression not in MEDIA_TYPES:
        raise LayerError(
            f"unknown layer compression {compression!r}",
            hint="use one of: " + ", ".join(MEDIA_TYPES),
        )
    epoch = source_date_epoch if source_date_epoch is not None else source_date_epoch_from_env()
    try:
        root_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise LayerError(
            f"{src}: cannot read layer source: {exc.strerror}",
            hint="pass an existing directory",
        ) from None
    compressed = HashingWriter(out)
    kind = "" if compression == "none" else compression
    compressor = open_compressor(compressed, kind, level)  # type: ignore[arg-type]
    plain = HashingWriter(compressor)
    try:
        with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            walker = _TreeWriter(tar, epoch, overlay_upper)
            walker.write_tree(root_fd)
        compressor.close()
    except OSError as exc:
        raise LayerError(
            f"{src}: cannot write layer: {exc.strerror or exc}",
            hint="check that the directory is readable and not changing while it is written",
        ) from None
    finally:
        os.close(root_fd)
    return LayerInfo(
        digest=compressed.digest,
        size=compressed.size,
        diff_id=plain.digest,
        media_type=MEDIA_TYPES[compression],
        skipped=tuple(walker.skipped),
    )


def _proc_path(dirfd: int, name: str) -> str:
    """A path to ``name`` in the directory ``dirfd`` that resolves no symlink but the last."""
    return f"/proc/self/fd/{dirfd}/{name}"


def _read_xattrs(target: int | str) -> dict[str, bytes]:
    """The xattrs of an fd or a (never followed) path, sorted by name."""
    follow = isinstance(target, int)  # an fd refuses follow_symlinks=False
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:  # file system without xattrs
        return {}
    out: dict[str, bytes] = {}
    for key in sorted(names):
        try:
            out[key] = os.getxattr(target, key, follow_symlinks=follow)
        except OSError:  # removed between list and get, or not readable by us
            continue
    return out


class _TreeWriter:
    """One walk of a source tree into an open tar stream."""

    def __init__(self, tar: tarfile.TarFile, epoch: int | None, overlay_upper: bool) -> None:
        self.tar = tar
        self.epoch = epoch
        self.overlay_upper = overlay_upper
        self.links: dict[tuple[int, int], str] = {}
        self.skipped: list[str] = []

    def write_tree(self, root_fd: int) -> None:
        # An explicit stack rather than recursion: trees deeper than Python's recursion
        # limit are legal.
        stack: list[tuple[int, str, Iterator[str]]] = [(root_fd, "", self._children(root_fd))]
        try:
            while stack:
                dirfd, prefix, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    if dirfd != root_fd:
                        os.close(dirfd)
                    continue
                child_fd = self._entry(dirfd, name, prefix + name)
                if child_fd is not None:
                    stack.append((child_fd, prefix + name + "/", self._children(child_fd)))
        finally:
            for dirfd, _, _ in stack:
                if dirfd != root_fd:
                    os.close(dirfd)

    @staticmethod
    def _children(dirfd: int) -> Iterator[str]:
        return iter(sorted(os.listdir(dirfd), key=os.fsencode))

    def _entry(self, dirfd: int, name: str, arcname: str) -> int | None:
        """Write one entry; returns an open fd when it is a directory to descend into."""
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(name, _O_DIR, dir_fd=dirfd)
            try:
                self._directory(fd, arcname)
            except BaseException:
                os.close(fd)
                raise
            return fd
        if stat.S_ISREG(st.st_mode):
            self._regular(dirfd, name, arcname)
            return None
        if stat.S_ISSOCK(st.st_mode):
            self.skipped.append(arcname)
            return None
        self._special(dirfd, name, arcname, st)
        return None

    def _info(self, arcname: str, st: os.stat_result, xattrs: dict[str, bytes]) -> tarfile.TarInfo:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = st.st_uid
        info.gid = st.st_gid
        info.uname = ""
        info.gname = ""
        mtime = st.st_mtime_ns // 1_000_000_000
        info.mtime = min(mtime, self.epoch) if self.epoch is not None else mtime
        kept = {
            "SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape")
            for key, value in xattrs.items()
            if not is_overlay_xattr(key) and key not in _HOST_XATTRS
        }
        if kept:
            info.pax_headers = kept
        return info

    def _check_overlay(self, arcname: str, xattrs: dict[str, bytes]) -> None:
        if not self.overlay_upper:
            return
        for feature, option in (("redirect", "redirect_dir=off"), ("metacopy", "metacopy=off")):
            if overlay_xattr(xattrs, feature) is not None:
                raise LayerError(
                    f"{arcname}: the overlay upper dir uses overlayfs {feature}, "
                    "so its content is not all in the upper dir",
                    hint=f"mount the overlay with {option}",
                )

    def _directory(self, fd: int, arcname: str) -> None:
        st = os.fstat(fd)
        xattrs = _read_xattrs(fd)
        self._check_overlay(arcname, xattrs)
        info = self._info(arcname, st, xattrs)
        info.type = tarfile.DIRTYPE
        self.tar.addfile(info)
        if self.overlay_upper and overlay_xattr(xattrs, "opaque") == b"y":
            # Right after its directory, as docker writes it, so that readers applying
            # entries in order never delete content of this same layer.
            marker = self._info(f"{arcname}/{WH_OPAQUE}", st, {})
            marker.mode &= 0o777
            self.tar.addfile(marker)

    def _regular(self, dirfd: int, name: str, arcname: str) -> None:
        fd = os.open(name, _O_FILE, dir_fd=dirfd)
        with os.fdopen(fd, "rb") as file:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LayerError(
                    f"{arcname}: changed type while the layer was written",
                    hint="stop whatever writes to the directory, then write the layer again",
                )
            xattrs = _read_xattrs(fd)
            self._check_overlay(arcname, xattrs)
            if self.overlay_upper and overlay_xattr(xattrs, "whiteout") is not None:
                self._whiteout(arcname, st)
                return
            info = self._info(arcname, st, xattrs)
            if self._hardlink(info, st):
                self.tar.addfile(info)
                return
            info.size = st.st_size
            self.tar.addfile(info, file)

    def _special(self, dirfd: int, name: str, arcname: str, st: os.stat_result) -> None:
        if self.overlay_upper and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            self._whiteout(arcname, st)
            return
        xattrs = _read_xattrs(_proc_path(dirfd, name))
        info = self._info(arcname, st, xattrs)
        if self._hardlink(info, st):
            pass
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(name, dir_fd=dirfd)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        else:
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
        self.tar.addfile(info)

    def _hardlink(self, info: tarfile.TarInfo, st: os.stat_result) -> bool:
        """Turn ``info`` into a link to the first entry seen with the same inode."""
        if st.st_nlink < 2:
            return False
        key = (st.st_dev, st.st_ino)
        first = self.links.get(key)
        if first is None:
            self.links[key] = info.name
            return False
        info.type = tarfile.LNKTYPE
        info.linkname = first
        info.size = 0
        info.pax_headers = {}  # the inode's xattrs travel with its first entry
        return True

    def _whiteout(self, arcname: str, st: os.stat_result) -> None:
        # Not a hardlink candidate: overlayfs makes whiteouts links of one shared inode.
        head, _, base = arcname.rpartition("/")
        info = self._info(f"{head}/{WH_PREFIX}{base}" if head else WH_PREFIX + base, st, {})
        info.type = tarfile.REGTYPE
        info.mode = 0o600
        self.tar.addfile(info)
