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

from envkit.errors import ChildError
from envkit.host import idmap, syscalls

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
    if _starts == 0:
        # A one-off run: nothing to share, so nothing to fork or import (start-up cost).
        # Two threads' first starts racing here both make their own namespace: harmless.
        _starts = 1
        return None
    from envkit.host.forking import FORK_LOCK  # lazy for start-up: a one-off run never forks here

    # The fork lock guards this module's state too: the namespace is made by a fork, and
    # a second lock around a fork is what the fork lock's policy rules out.
    with FORK_LOCK:
        _starts += 1
        if _fd is not None and not _still_ours(_fd, maps):
            _fd = None
        if _fd is None:
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
    """A new user namespace with ``maps`` written, as a close-on-exec fd: a child
    unshares it, and the parent writes its maps and opens it while the child waits."""
    from envkit.host.forking import call_in_child  # lazy for start-up, as in join_path

    opened: list[int] = []

    def hold(pid: int) -> None:
        maps.write(pid)
        opened.append(os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC))

    try:
        call_in_child(
            _nothing,
            what="the process making a user namespace",
            setup=_unshare_user,
            parent_step=hold,
        )
    except ChildError:
        if not opened:
            raise  # once the namespace is held, the child's end does not matter
    return opened[0]


def _unshare_user() -> None:  # pragma: no cover - runs in the child
    syscalls.unshare(syscalls.CLONE_NEWUSER)


def _nothing() -> None:  # pragma: no cover - runs in the child
    """The child's work is done once the parent holds the namespace."""
