"""Reading .deb files: the ar container, control.tar and data.tar.

A .deb is an ar archive of ``debian-binary``, ``control.tar[.gz|.xz|.zst]`` and
``data.tar[.gz|.xz|.zst]`` (deb(5)). :func:`extract_data` unpacks data.tar the way dpkg
does, so a directory that already exists as a symlink (``/bin -> usr/bin`` on a merged-/usr
system) is followed rather than replaced, but every path is resolved inside the root: no
member, symlink or hardlink can make it write outside.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from envkit.builtin.debian.control import paragraphs
from envkit.errors import DebFormatError
from envkit.plugins.overrides import override
from envkit.records import Record, Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing_extensions import Buffer

AR_MAGIC = b"!<arch>\n"
_HEADER = 60
_MAX_LINKS = 40


class Member(Value):
    """One member of an ar archive: its name, and where its data starts and ends."""

    name: str
    offset: int
    size: int


def ar_members(stream: BinaryIO, where: str) -> list[Member]:
    """The members of the ar archive ``stream`` (positioned at its start)."""
    if stream.read(len(AR_MAGIC)) != AR_MAGIC:
        raise DebFormatError(f"{where}: not a .deb (no ar header)", hint="fetch it again")
    members: list[Member] = []
    pos = len(AR_MAGIC)
    while True:
        header = stream.read(_HEADER)
        if not header:
            return members
        if len(header) != _HEADER or header[58:60] != b"`\n":
            raise DebFormatError(f"{where}: truncated or corrupt ar header at byte {pos}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DebFormatError(f"{where}: bad member size in ar header at byte {pos}") from None
        members.append(Member(name, pos + _HEADER, size))
        pos += _HEADER + size + (size & 1)
        stream.seek(pos)


class _Slice(io.RawIOBase):
    """``size`` bytes of ``stream`` from ``offset``."""

    def __init__(self, stream: BinaryIO, offset: int, size: int) -> None:
        self._stream = stream
        self._left = size
        stream.seek(offset)

    @override
    def readable(self) -> bool:
        return True

    @override
    def readinto(self, buffer: Buffer) -> int:
        if self._left <= 0:
            return 0
        with memoryview(buffer) as view, view.cast("B") as octets:
            data = self._stream.read(min(len(octets), self._left))
            self._left -= len(data)
            octets[: len(data)] = data
        return len(data)


def _decompressed(raw: BinaryIO, name: str, where: str) -> BinaryIO:
    if name.endswith(".tar"):
        return raw
    if name.endswith(".xz"):
        return lzma.open(raw)  # type: ignore[return-value]
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if name.endswith(".zst"):
        import zstandard  # lazy for start-up: few .debs are zstd-compressed

        return zstandard.ZstdDecompressor().stream_reader(raw)
    raise DebFormatError(f"{where}: unsupported member compression {name!r}")


@contextlib.contextmanager
def open_tar(path: Path, kind: str) -> Iterator[tarfile.TarFile]:
    """The ``control`` or ``data`` tar of the .deb at ``path``, as a streaming tarfile."""
    where = str(path)
    with open(path, "rb") as stream:
        members = ar_members(stream, where)
        if not members or members[0].name != "debian-binary":
            raise DebFormatError(f"{where}: not a .deb (no debian-binary member first)")
        found = [m for m in members if m.name.split(".")[0] == kind]
        if not found:
            raise DebFormatError(f"{where}: no {kind}.tar member")
        member = found[0]
        raw = io.BufferedReader(_Slice(stream, member.offset, member.size), 1 << 16)
        plain = _decompressed(raw, member.name, where)
        try:
            with tarfile.open(fileobj=plain, mode="r|") as tar:
                yield tar
        except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
            raise DebFormatError(f"{where}: corrupt {member.name}: {exc}") from None


def control_files(path: Path) -> dict[str, bytes]:
    """The files of the .deb's control.tar (``control``, ``md5sums``, ``postinst``...)."""
    files: dict[str, bytes] = {}
    with open_tar(path, "control") as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if info.isfile() and name and "/" not in name:
                f = tar.extractfile(info)
                if f is not None:
                    files[name] = f.read()
    return files


def control_fields(path: Path) -> dict[str, str]:
    """The ``control`` paragraph of the .deb at ``path``."""
    text = control_files(path).get("control", b"").decode("utf-8", "replace")
    return next(paragraphs(text), {})


class ExtractResult(Record):
    """What :func:`extract_data` did: the paths it created (``/usr/bin/x`` form) and
    the members it left out (device nodes and fifos, which dpkg creates itself)."""

    paths: list[str]
    skipped: list[str]


def extract_data(path: Path, root: Path, *, chown: bool = True) -> ExtractResult:
    """Unpack the data.tar of the .deb at ``path`` into ``root`` as dpkg does.

    ``chown``: give files their owners from the tar (needs the ids to exist: run in a
    user namespace as its root); owners that cannot be set are left as they are.
    """
    result = ExtractResult([], [])
    writer = _Writer(root, chown, str(path))
    try:
        with open_tar(path, "data") as tar:
            for info in tar:
                try:
                    writer.member(tar, info, result)
                except OSError as exc:
                    raise DebFormatError(
                        f"{path}: cannot unpack {info.name!r}: {exc.strerror or exc}",
                        hint="the package does not fit the root file system built so far",
                    ) from None
    finally:
        writer.close()
    return result


def _parts(name: str, where: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DebFormatError(f"{where}: member {name!r} climbs out of the root with '..'")
    return parts


class _Writer:
    """Writes tar members below ``root`` with fd-relative calls (dpkg semantics)."""

    def __init__(self, root: Path, chown: bool, where: str) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.chown = chown
        self.where = where
        self.dirs: dict[tuple[str, ...], int] = {(): self.root_fd}

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    def member(self, tar: tarfile.TarFile, info: tarfile.TarInfo, result: ExtractResult) -> None:
        parts = _parts(info.name, self.where)
        if not parts:
            return
        if not (info.isdir() or info.isreg() or info.issym() or info.islnk()):
            result.skipped.append("/" + "/".join(parts))
            return
        dirfd = self.directory(parts[:-1])
        name = parts[-1]
        if info.isdir():
            if not self._mkdir(dirfd, name):
                return  # a kept symlink: its target's metadata is not this member's
        else:
            self._remove_leaf(dirfd, parts)
            if info.isreg():
                self._file(dirfd, name, info, tar)
            elif info.issym():
                os.symlink(info.linkname, name, dir_fd=dirfd)
            else:
                target_parts = _parts(info.linkname, self.where)
                if not target_parts:
                    raise DebFormatError(f"{self.where}: hardlink {info.name!r} to the root")
                src_fd = self.directory(target_parts[:-1])
                src = target_parts[-1]
                st = os.stat(src, dir_fd=src_fd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise DebFormatError(
                        f"{self.where}: hardlink {info.name!r} points at a non-file"
                    )
                os.link(src, name, src_dir_fd=src_fd, dst_dir_fd=dirfd, follow_symlinks=False)
                result.paths.append("/" + "/".join(parts))
                return
        self._owner(dirfd, name, info)
        if not info.issym():
            os.chmod(name, stat.S_IMODE(info.mode), dir_fd=dirfd)
        os.utime(name, (info.mtime, info.mtime), dir_fd=dirfd, follow_symlinks=False)
        result.paths.append("/" + "/".join(parts))

    def directory(self, parts: list[str]) -> int:
        """An fd of the directory ``parts`` names, symlinks resolved inside the root;
        missing directories are created (0755)."""
        key = tuple(parts)
        found = self.dirs.get(key)
        if found is not None:
            return found
        fd = self._resolve(parts)
        self.dirs[key] = fd
        return fd

    def _resolve(self, parts: list[str]) -> int:
        pending = list(parts)
        done: list[str] = []
        links = 0
        fd = os.dup(self.root_fd)
        try:
            while pending:
                part = pending.pop(0)
                if part == "..":
                    done = done[:-1]
                    os.close(fd)
                    fd = self._walk(done)
                    continue
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    with contextlib.suppress(FileExistsError):  # made by a parallel unpack
                        os.mkdir(part, 0o755, dir_fd=fd)
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > _MAX_LINKS:
                        raise DebFormatError(f"{self.where}: too many symlinks below {parts}")
                    target = os.readlink(part, dir_fd=fd)
                    if target.startswith("/"):
                        done = []
                        os.close(fd)
                        fd = os.dup(self.root_fd)
                    pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise DebFormatError(
                        f"{self.where}: /{'/'.join(parts)} is not a directory in the root",
                        hint="two packages disagree on a path; this .deb cannot be unpacked",
                    )
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nxt
                done.append(part)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _walk(self, parts: list[str]) -> int:
        fd = os.dup(self.root_fd)
        for part in parts:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd

    @staticmethod
    def _mkdir(dirfd: int, name: str) -> bool:
        """Make sure directory ``name`` exists; False when it is kept as a symlink."""
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):  # made by a parallel unpack
                os.mkdir(name, 0o755, dir_fd=dirfd)
            return True
        if stat.S_ISLNK(st.st_mode):
            # dpkg keeps a symlink to a directory where a package ships a directory.
            return False
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dirfd)
            os.mkdir(name, 0o755, dir_fd=dirfd)
        return True

    def _remove_leaf(self, dirfd: int, parts: list[str]) -> None:
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dirfd)
            return
        try:
            os.rmdir(name, dir_fd=dirfd)
        except OSError:
            raise DebFormatError(
                f"{self.where}: /{'/'.join(parts)} would replace a non-empty directory",
                hint="two packages disagree on a path; this .deb cannot be unpacked",
            ) from None
        key = tuple(parts)
        fd = self.dirs.pop(key, None)
        if fd is not None:
            os.close(fd)

    def _file(self, dirfd: int, name: str, info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        src = tar.extractfile(info)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=dirfd)
        with os.fdopen(fd, "wb") as out:
            if src is not None:
                while chunk := src.read(1 << 20):
                    out.write(chunk)

    def _owner(self, dirfd: int, name: str, info: tarfile.TarInfo) -> None:
        if not self.chown:
            return
        with contextlib.suppress(OSError):  # an id the user namespace does not map
            os.chown(name, info.uid, info.gid, dir_fd=dirfd, follow_symlinks=False)
