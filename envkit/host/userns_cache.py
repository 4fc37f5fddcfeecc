"""One user namespace, kept open, for a process's rootless containers after its first.

Rootless, a container's id maps are written by the setuid helpers newuidmap and
newgidmap: two execs that cost about 4-5 ms here, a fifth of a container's start. A
process that starts many containers (a test suite's fixtures, a stack) need not pay that
each time: from its second start on, it makes one user namespace with the maps of
:func:`envkit.host.idmap.plan`, keeps an fd to it, and every container joins it
(:attr:`ContainerConfig.userns`) instead of making and mapping its own. Rootless podman
does the same with its pause process; here no process stays: the open fd keeps the
namespace alive, and it goes when the process exits.

Containers still get their own mount, pid, network, uts, ipc and cgroup namespaces.
Sharing the user namespace gives them nothing they did not have: their ids already map to
the same host ids, and docker's default capabilities (no CAP_SYS_ADMIN, no
CAP_SYS_PTRACE) give no power over namespaces they cannot see.

Root writes its maps directly, which is cheap, but it still makes a user namespace per
container and waits for the maps to be written; root shares one too. A single-id map
(no subordinate ids) is written directly by an unprivileged caller: not shared.
"""

from __future__ import annotations

import os
from _thread import allocate_lock

from envkit.host import idmap, syscalls

# _thread rather than threading: this module is on every start (start-up cost).
_lock = allocate_lock()
_starts = 0
_fd: int | None = None
#: Who made ``_fd`` (a forked child makes its own), for which maps, and the namespace's
#: identity (so an fd closed and reused behind our back is noticed).
_owner: tuple[int, str, tuple[int, int]] | None = None


def join_path(maps: idmap.IdMaps) -> str | None:
    """The user namespace a new container should join, or ``None`` to make its own.

    ``None`` for single-id maps and for the first start of a process (a one-off
    ``envkit run`` would only pay for the extra fork).
    """
    global _starts, _fd, _owner
    if not (maps.use_helpers or os.geteuid() == 0):
        return None
    with _lock:
        _starts += 1
        if _fd is not None and not _still_ours(_fd, maps):
            _fd = None
        if _fd is None:
            if _starts < 2:
                return None
            _fd = _make(maps)
            st = os.fstat(_fd)
            _owner = (os.getpid(), repr(maps), (st.st_dev, st.st_ino))
        # The monitor is a fork of this process: it has the same fd number open.
        return f"/proc/self/fd/{_fd}"


def _still_ours(fd: int, maps: idmap.IdMaps) -> bool:
    """Whether ``fd`` is still this process's namespace for ``maps``. A forked child
    (another pid) makes its own when it needs one."""
    if _owner is None or _owner[0] != os.getpid() or _owner[1] != repr(maps):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == _owner[2]


def _make(maps: idmap.IdMaps) -> int:
    """A new user namespace with ``maps`` written, as a close-on-exec fd."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(done_r, 1)  # stay until the parent holds the namespace
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise OSError("the process making a user namespace died")
        maps.write(pid)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)  # the child reads EOF and exits
        os.waitpid(pid, 0)
