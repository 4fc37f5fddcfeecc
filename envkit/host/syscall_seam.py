"""The syscall seam: every kernel call of a container's own setup, as one Protocol.

youki's ``Syscall`` trait, in Python. The runtime's container-side code (the
intermediate and pid 1 in :mod:`envkit.runtime.spawn`, the root file system in
:mod:`envkit.runtime.rootfs`, the command's last steps in :mod:`envkit.runtime.init`,
``envkit exec``'s helper in :mod:`envkit.runtime.nsexec`) takes a ``kernel: Syscalls``
argument that defaults to the module :mod:`envkit.host.syscalls` itself, so the real path
costs one attribute lookup per call, as before. Unit tests pass a recording fake instead
(``tests/unit/runtime/fake_kernel.py``) and check the order and the arguments of the
security-relevant steps without root, namespaces or forks.

Only what changes kernel state, or the process, goes through the seam; reading and
creating files in the container's root (mount points, ``/dev`` nodes and links) is plain
:mod:`os`, so a test runs it against a temporary directory.

This module is imported for type checking only (``TYPE_CHECKING``) on the start-up path:
it costs :mod:`typing`, which ``envkit run`` does not load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn, Protocol


class Syscalls(Protocol):
    """The kernel as the container-side setup sees it (:mod:`envkit.host.syscalls`).

    Each call raises :class:`OSError` with the errno on failure, as :mod:`os` does.
    """

    # Namespaces.
    def unshare(self, flags: int) -> None:
        """``unshare(2)``."""

    def setns(self, fd: int, nstype: int = 0) -> None:
        """``setns(2)``."""

    # Mounts.
    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int = 0,
        data: str | None = None,
    ) -> None:
        """``mount(2)``."""

    def umount(self, target: str, flags: int = 0) -> None:
        """``umount2(2)``."""

    def pivot_root(self, new_root: str, put_old: str) -> None:
        """``pivot_root(2)``."""

    def mount_flags(self, path: str) -> int:
        """The ``ST_*`` flags of the mount at ``path`` (``statvfs(2)``'s ``f_flag``)."""

    # The UTS and network namespaces.
    def sethostname(self, name: str) -> None:
        """``sethostname(2)``."""

    def link_up(self, name: str) -> None:
        """Bring the network interface ``name`` up (``SIOCSIFFLAGS``)."""

    # Privileges.
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        """``prctl(2)``."""

    def capset(
        self, effective: frozenset[int], permitted: frozenset[int], inheritable: frozenset[int]
    ) -> None:
        """``capset(2)`` for the calling thread."""

    def setgroups(self, groups: Sequence[int], /) -> None:
        """``setgroups(2)``."""

    def setresgid(self, rgid: int, egid: int, sgid: int, /) -> None:
        """``setresgid(2)``."""

    def setresuid(self, ruid: int, euid: int, suid: int, /) -> None:
        """``setresuid(2)``."""

    # The process.
    def setsid(self) -> None:
        """``setsid(2)``."""

    def hide_command_line(self) -> None:
        """Overwrite this process's command line and environment strings in memory."""

    def take_terminal(self, tty: int) -> None:
        """``tty`` as controlling terminal (``TIOCSCTTY``) and as fds 0, 1 and 2."""

    def chdir(self, path: str, /) -> None:
        """``chdir(2)``."""

    def close_all_but(self, keep: set[int]) -> None:
        """Close every fd of this process that is not in ``keep``."""

    def read(self, fd: int, length: int, /) -> bytes:
        """``read(2)`` (the start's handshake pipes)."""

    def write(self, fd: int, data: bytes, /) -> int:
        """``write(2)`` (the start's handshake and error pipes)."""

    def fork(self) -> int:
        """``fork(2)``: 0 in the child, the child's pid in the parent."""

    def execve(self, path: str, argv: list[str], env: dict[str, str], /) -> NoReturn:
        """``execve(2)``."""

    def exit_process(self, status: int, /) -> NoReturn:
        """``_exit(2)``: leave at once, without Python's clean-up."""
