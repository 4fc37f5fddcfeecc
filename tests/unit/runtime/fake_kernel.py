"""A recording fake of the syscall seam (:class:`envkit.host.syscall_seam.Syscalls`).

youki tests its rootfs and process set-up through a ``TestHelperSyscall`` that records
every call instead of making it; this is the same for envkit. The fake

- records every call, in order, as a :class:`Call` (``calls``);
- keeps a small mount table, so that :meth:`mount_flags` answers as the kernel would:
  a new file system has the flags it was mounted with, a bind mount those of the mount
  it was taken from (the flags the kernel then locks), a remount the new ones;
- fills a mounted file system with the entries a real one has (``contents``: fstype ->
  relative paths, directories ending in ``/``), so that the code that looks for
  ``/proc/kcore`` or ``/sys/firmware`` before masking them finds them;
- fails the calls a test asks it to (:meth:`fail_on`), with the message
  :mod:`envkit.host.syscalls` gives;
- models ``fork`` (the child's side: 0), ``execve`` and ``_exit``: after the process
  exec'd or exited, every further call raises the same :class:`ProcessGone` and is not
  recorded, as nothing runs in a real process after them.

Mount points and ``/dev`` entries are created by the runtime with :mod:`os`, so a test
runs the code in a temporary working directory.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import NamedTuple, NoReturn

from envkit.host.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
)

MS_SHARED = 1 << 20
MS_UNBINDABLE = 1 << 17
_PROPAGATION = MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE
# statvfs's ST_RDONLY/NOSUID/NODEV/NOEXEC have the values of the MS_ flags.
_PER_MOUNT = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC

_FLAG_NAMES = {
    MS_RDONLY: "MS_RDONLY",
    MS_NOSUID: "MS_NOSUID",
    MS_NODEV: "MS_NODEV",
    MS_NOEXEC: "MS_NOEXEC",
    MS_REMOUNT: "MS_REMOUNT",
    MS_BIND: "MS_BIND",
    MS_REC: "MS_REC",
    MS_PRIVATE: "MS_PRIVATE",
    MS_SLAVE: "MS_SLAVE",
    MS_SHARED: "MS_SHARED",
    MS_UNBINDABLE: "MS_UNBINDABLE",
}


#: The seam's calls that envkit.host.syscalls takes from os as they are.
_FROM_OS = frozenset(
    ("setsid", "setgroups", "setresgid", "setresuid", "chdir", "read", "write", "fork", "execve")
)


def flag_names(flags: int) -> str:
    """``MS_BIND|MS_REC`` for ``MS_BIND | MS_REC``: readable assertion messages."""
    names = [name for bit, name in _FLAG_NAMES.items() if flags & bit]
    rest = flags & ~sum(_FLAG_NAMES)
    return "|".join(names + ([hex(rest)] if rest else [])) or "0"


class Call(NamedTuple):
    """One call through the seam: its name and arguments."""

    name: str
    args: tuple[object, ...]


class Mount(NamedTuple):
    """A recorded ``mount(2)``; ``flags`` spelled out by :func:`flag_names`."""

    source: str | None
    target: str
    fstype: str | None
    flags: str
    data: str | None


class ProcessGone(BaseException):
    """The fake process exec'd or exited; ``how`` is ``execve`` or ``exit``."""

    def __init__(self, how: str, value: object) -> None:
        super().__init__(f"{how} {value!r}")
        self.how = how
        self.value = value


class FakeKernel:
    """A recording :class:`~envkit.host.syscall_seam.Syscalls` (see the module docstring)."""

    def __init__(
        self, contents: dict[str, Sequence[str]] | None = None, host: dict[str, int] | None = None
    ) -> None:
        """``contents``: what a mounted file system holds, by fstype; ``host``: the
        host's mounts (absolute path -> per-mount ``MS_*`` flags)."""
        self.calls: list[Call] = []
        self.contents = contents or {}
        self.gone: ProcessGone | None = None
        self._table: dict[str, int] = dict(host or {})  # mount point -> per-mount flags
        self._failures: list[tuple[str, Callable[[tuple[object, ...]], bool], int]] = []
        self._new_root: str | None = None
        self._cwd = "."

    # Test helpers.

    def fail_on(
        self, name: str, when: Callable[[tuple[object, ...]], bool], err: int = errno.EPERM
    ) -> None:
        """Make the calls ``name`` whose arguments satisfy ``when`` fail with ``err``."""
        self._failures.append((name, when, err))

    def names(self) -> list[str]:
        """The names of the calls made, in order."""
        return [call.name for call in self.calls]

    def mounts(self) -> list[Mount]:
        """The ``mount`` calls made, in order (failed ones included)."""
        return [
            Mount(a[0], a[1], a[2], flag_names(a[3]), a[4])  # type: ignore[arg-type]
            for name, a in self.calls
            if name == "mount"
        ]

    def _record(self, name: str, *args: object) -> None:
        if self.gone is not None:
            raise self.gone
        self.calls.append(Call(name, args))
        for fail_name, when, err in self._failures:
            if fail_name == name and when(args):
                if name in _FROM_OS:  # os's own functions: the bare strerror
                    raise OSError(err, os.strerror(err))
                what = f"mount {args[2] or ''} on {args[1]}" if name == "mount" else name
                # The message envkit.host.syscalls gives (``_check``).
                raise OSError(err, f"{what}: {os.strerror(err)}")

    def _resolve(self, path: str) -> str:
        if self._new_root is not None and path.startswith("/"):
            return os.path.normpath(os.path.join(self._new_root, path.lstrip("/")))
        return os.path.normpath(os.path.join(self._cwd, path))

    def _flags_at(self, path: str) -> int:
        path = self._resolve(path)
        best, flags = -1, 0
        for point, point_flags in self._table.items():
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) > best:
                best, flags = len(point), point_flags
        return flags

    # The seam.

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._record("setns", fd, nstype)

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int = 0,
        data: str | None = None,
    ) -> None:
        self._record("mount", source, target, fstype, flags, data)
        point = self._resolve(target)
        if flags & MS_REMOUNT:
            self._table[point] = flags & _PER_MOUNT
        elif flags & MS_BIND:
            self._table[point] = self._flags_at(source) if source else 0
        elif flags & _PROPAGATION:
            pass  # a propagation change: no new mount
        else:
            self._table[point] = flags & _PER_MOUNT
            for entry in self.contents.get(fstype or "", ()):
                path = os.path.join(target, entry)
                if entry.endswith("/"):
                    os.makedirs(path, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    open(path, "w").close()

    def umount(self, target: str, flags: int = 0) -> None:
        self._record("umount", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)
        self._new_root = os.path.normpath(os.path.join(self._cwd, new_root))

    def mount_flags(self, path: str) -> int:
        if self.gone is not None:  # a query: not recorded
            raise self.gone
        return self._flags_at(path)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def link_up(self, name: str) -> None:
        self._record("link_up", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self._record("prctl", option, arg2, arg3, arg4, arg5)
        return 0

    def capset(
        self, effective: frozenset[int], permitted: frozenset[int], inheritable: frozenset[int]
    ) -> None:
        self._record("capset", effective, permitted, inheritable)

    def setgroups(self, groups: Sequence[int], /) -> None:
        self._record("setgroups", list(groups))

    def setresgid(self, rgid: int, egid: int, sgid: int, /) -> None:
        self._record("setresgid", rgid, egid, sgid)

    def setresuid(self, ruid: int, euid: int, suid: int, /) -> None:
        self._record("setresuid", ruid, euid, suid)

    def setsid(self) -> None:
        self._record("setsid")

    def hide_command_line(self) -> None:
        self._record("hide_command_line")

    def take_terminal(self, tty: int) -> None:
        self._record("take_terminal", tty)

    def chdir(self, path: str, /) -> None:
        self._record("chdir", path)
        if self._new_root is None:
            self._cwd = os.path.normpath(os.path.join(self._cwd, path))

    def close_all_but(self, keep: set[int]) -> None:
        self._record("close_all_but", frozenset(keep))

    def read(self, fd: int, length: int, /) -> bytes:
        self._record("read", fd, length)
        return os.read(fd, length)

    def write(self, fd: int, data: bytes, /) -> int:
        self._record("write", fd, data)
        return os.write(fd, data)

    def fork(self) -> int:
        self._record("fork")
        return 0  # the child's side: the set-up of pid 1 runs on in this process

    def execve(self, path: str, argv: list[str], env: dict[str, str], /) -> NoReturn:
        self._record("execve", path, argv, env)
        self.gone = ProcessGone("execve", path)
        raise self.gone

    def exit_process(self, status: int, /) -> NoReturn:
        self._record("exit_process", status)
        self.gone = ProcessGone("exit", status)
        raise self.gone
