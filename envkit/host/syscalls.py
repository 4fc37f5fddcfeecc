"""Thin ctypes wrappers of the Linux system calls the runtime needs and Python lacks.

Each raises :class:`OSError` with the errno, like the functions of :mod:`os`.

This module is also the real implementation of the syscall seam
(:class:`envkit.host.syscall_seam.Syscalls`): the container-side setup calls the kernel
through it, and the calls it takes from :mod:`os` and :mod:`envkit.host.prctl` are
named here too, so that a test can swap the whole module for a recording fake.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import termios

from envkit.host.prctl import hide_command_line as hide_command_line
from envkit.host.prctl import prctl as prctl

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


# The calls of the seam that Python has: the functions of os themselves (no wrapper, no
# cost on the real path).
setsid = os.setsid
setgroups = os.setgroups
setresgid = os.setresgid
setresuid = os.setresuid
chdir = os.chdir
read = os.read
write = os.write
fork = os.fork
execve = os.execve
exit_process = os._exit


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


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def link_up(name: str) -> None:
    """Bring the interface ``name`` up in this network namespace (as ``ip link set up``)."""
    sock = inet_dgram_socket()
    try:
        request = struct.pack("16sH22x", name.encode(), 0)
        current = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), current | _IFF_UP))
    finally:
        os.close(sock)


def take_terminal(tty: int) -> None:
    """Make the terminal ``tty`` this session's controlling terminal (``TIOCSCTTY``) and
    stdin, stdout and stderr; ``tty`` itself is closed unless it is one of them."""
    fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(tty, target)
    if tty > 2:
        os.close(tty)


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


def mount_flags(path: str) -> int:
    """The ``ST_*`` flags of the mount at ``path`` (``statvfs(2)``'s ``f_flag``)."""
    return os.statvfs(path).f_flag


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


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def capset(
    effective: frozenset[int], permitted: frozenset[int], inheritable: frozenset[int]
) -> None:
    """``capset(2)`` for the calling thread (version 3: 64 capability bits)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in (0, 1):
        lo = 32 * index

        def bits(caps: frozenset[int], lo: int = lo) -> int:
            return sum(1 << (c - lo) for c in caps if lo <= c < lo + 32)

        data[index] = _CapData(bits(effective), bits(permitted), bits(inheritable))
    _check(_libc.capset(ctypes.byref(header), data), "capset")


NS_GET_USERNS = 0xB701


def owner_userns(ns_fd: int) -> int:
    """A new fd for the user namespace owning the namespace ``ns_fd`` (``NS_GET_USERNS``)."""
    return fcntl.ioctl(ns_fd, NS_GET_USERNS)


def close_all_but(keep: set[int]) -> None:
    """Close every fd of this process that is not in ``keep``."""
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
