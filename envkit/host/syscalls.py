"""Thin ctypes wrappers of the Linux system calls the runtime needs and Python lacks.

Each raises :class:`OSError` with the errno, like the functions of :mod:`os`.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

# pivot_root has no libc wrapper; its number differs between architectures.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def sethostname(name: str) -> None:
    """Set the UTS namespace's host name (``sethostname(2)``).

    This and :func:`inet_dgram_socket` use libc rather than :mod:`socket`, which costs
    milliseconds to import on every container start and is needed for nothing else.
    """
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def inet_dgram_socket() -> int:
    """A new close-on-exec AF_INET datagram socket's fd, for interface ioctls."""
    af_inet, sock_dgram, sock_cloexec = 2, 2, 0o2000000
    fd = int(_libc.socket(ctypes.c_int(af_inet), ctypes.c_int(sock_dgram | sock_cloexec), 0))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"socket: {os.strerror(err)}")
    return fd


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``unshare(2)``)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    """``mount(2)``."""
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            ctypes.c_ulong(flags),
            data.encode() if data is not None else None,
        ),
        f"mount {fstype or ''} on {target}",
    )


def umount(target: str, flags: int = 0) -> None:
    """``umount2(2)``."""
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """``pivot_root(2)``."""
    # os.uname, not platform: importing platform compiles a dozen regexes.
    machine = os.uname().machine
    number = _SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {machine}")
    _check(_libc.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")


def setns(fd: int, nstype: int = 0) -> None:
    """Move the calling thread into the namespace ``fd`` refers to (``setns(2)``).

    Joining a user namespace needs a single-threaded caller; a network namespace can be
    joined by one thread of a threaded process (sockets keep the namespace they were
    created in).
    """
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


NS_GET_USERNS = 0xB701


def owner_userns(ns_fd: int) -> int:
    """A new fd for the user namespace owning the namespace ``ns_fd`` (``NS_GET_USERNS``)."""
    import fcntl

    return fcntl.ioctl(ns_fd, NS_GET_USERNS)


def close_all_but(keep: set[int]) -> None:
    """Close every fd of this process that is not in ``keep``."""
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
