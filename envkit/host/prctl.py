"""``prctl(2)`` and the options the runtime uses."""

from __future__ import annotations

import ctypes
import os

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Call ``prctl``; raise :class:`OSError` on failure, else return its result."""
    result: int = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return result


def is_child_subreaper() -> bool:
    """Whether this process adopts its descendants' orphans (``PR_SET_CHILD_SUBREAPER``)."""
    flag = ctypes.c_int(0)
    prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag))
    return bool(flag.value)


def hide_command_line(title: bytes = b"envkit") -> None:
    """Overwrite this process's command line and environment strings in its memory.

    ``/proc/PID/cmdline`` is readable by every process that can see the pid, dumpable or
    not: a helper forked from the caller would show the caller's command line (host
    paths) to the container it joins. Done in the forked helper only; its parent keeps
    its own copy. ``environ`` is zeroed too, as a second wall behind non-dumpability.
    """
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # Fields 48-51 of proc(5): arg_start, arg_end, env_start, env_end (counted from 1;
    # fields[0] is field 3).
    arg_start, arg_end, env_start, env_end = (int(x) for x in fields[45:49])
    ctypes.memset(env_start, 0, env_end - env_start)
    ctypes.memset(arg_start, 0, arg_end - arg_start)
    ctypes.memmove(arg_start, title, min(len(title), arg_end - arg_start - 1))
