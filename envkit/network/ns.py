"""Getting into the holder's namespaces: forked helpers and daemons.

Joining a user namespace needs a single-threaded process, so what must run as the
holder's root (iptables, sysctls) runs in a freshly forked child (:func:`in_holder`), the
holder is started with :func:`daemonize`, and the network daemon
(:mod:`envkit.network.netd`, exec'd by :func:`envkit.network.control.spawn`) joins the
user namespace before it starts any thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from envkit.errors import ChildError, NetworkError
from envkit.host import syscalls
from envkit.host.forking import FORK_LOCK, call_in_child
from envkit.network import state

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any, NoReturn, TypeVar

    T = TypeVar("T")


def ns_path(pid: int, kind: str) -> str:
    return f"/proc/{pid}/ns/{kind}"


def join_userns(holder_pid: int, net: bool = False, become_root: bool = True) -> None:
    """Join the holder's user namespace (and its netns) as its root; single-threaded only.

    Both namespace files are opened first: once in, host root is no longer host root.
    Root of the host is not mapped there (its container root is a subordinate id), so it
    takes uid/gid 0 of the namespace explicitly: without that, the capabilities gained by
    ``setns`` would be dropped by the next ``execve`` (of iptables, say). Daemons, which
    never exec but read the caller's files, pass ``become_root=False``.
    """
    user_fd = os.open(ns_path(holder_pid, "user"), os.O_RDONLY | os.O_CLOEXEC)
    net_fd = os.open(ns_path(holder_pid, "net"), os.O_RDONLY | os.O_CLOEXEC) if net else -1
    try:
        syscalls.setns(user_fd, syscalls.CLONE_NEWUSER)
        if become_root and (os.getuid() != 0 or os.getgid() != 0):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if net:
            syscalls.setns(net_fd, syscalls.CLONE_NEWNET)
    finally:
        os.close(user_fd)
        if net:
            os.close(net_fd)


def join_netns(path: str) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, syscalls.CLONE_NEWNET)
    finally:
        os.close(fd)


def enter_holder(holder_pid: int) -> None:
    """Join the holder's user and network namespaces (single-threaded callers only)."""
    join_userns(holder_pid, net=True)


def in_holder(holder_pid: int, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a child inside the holder's namespaces; its result.

    The result must be a plain value (``None``, numbers, strings, lists, dicts): it comes
    back through :func:`envkit.host.forking.call_in_child`. A :class:`NetworkError` in
    the child comes back as itself; any other exception as a :class:`NetworkError` with
    the child's message.
    """
    try:
        return call_in_child(  # type: ignore[no-any-return]
            _entered,
            holder_pid,
            fn,
            *args,
            what=f"the helper process inside the network namespace of {holder_pid}",
        )
    except ChildError as exc:
        raise NetworkError(f"inside the network namespace: {exc}") from None


def _entered(holder_pid: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` once in the holder's namespaces (in a fresh, single-threaded child)."""
    enter_holder(holder_pid)
    return fn(*args)


def daemonize(
    name: str, body: Callable[[Callable[[], None]], None], keep: tuple[int, ...] = ()
) -> int:
    """Start ``body`` in a detached process (double fork, new session); its pid.

    ``body`` gets a ``ready()`` callback and must call it once it serves; errors before
    that are raised here as :class:`NetworkError`. Its stderr goes to
    ``$ENVKIT_HOME/network/logs/<name>.log``; fds other than ``keep`` are closed.
    """
    return spawn_daemon(name, body, keep).wait()


class Starting:
    """A daemon on its way up (:func:`spawn_daemon`): :meth:`wait` for its pid.

    Lets the caller do other work while the daemon starts on another core.
    """

    def __init__(self, name: str, log: Path, status: int, middle: int | None = None) -> None:
        self.name = name
        self._log = log
        self._status = status
        self._middle = middle

    def wait(self) -> int:
        """The daemon's pid once it called ``ready()``; :class:`NetworkError` if it failed."""
        with os.fdopen(self._status, "rb") as inp:
            line = inp.readline().decode(errors="replace").strip()
        if self._middle is not None:
            with contextlib.suppress(ChildProcessError):  # reaped by a catch-all reaper
                os.waitpid(self._middle, 0)
        if line.startswith("ok "):
            return int(line[3:])
        raise NetworkError(
            f"the {self.name} daemon failed to start: {line[4:] if line else 'it died'}",
            hint=f"see {self._log}",
        )


def spawn_daemon(
    name: str, body: Callable[[Callable[[], None]], None], keep: tuple[int, ...] = ()
) -> Starting:
    """:func:`daemonize` without waiting for ``ready()``: call ``wait()`` on the result."""
    log = state.root() / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with FORK_LOCK:  # the status pipe's write end is the daemon's alone
        r, w = os.pipe2(os.O_CLOEXEC)
        first = os.fork()
        if first != 0:
            os.close(w)
    if first == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            detach(log, (*keep, w))

            def ready() -> None:
                os.write(w, b"ok %d\n" % os.getpid())

            body(ready)
            os._exit(0)
        except BaseException as exc:
            message = str(exc) if isinstance(exc, NetworkError | OSError) else repr(exc)
            sys.__excepthook__(type(exc), exc, exc.__traceback__)  # no traceback module
            try:
                os.write(w, b"err " + message.encode(errors="replace") + b"\n")
            finally:
                os._exit(1)
    # The middle child exits as soon as it forked the daemon; it is reaped in wait(), so
    # that the caller goes on at once.
    return Starting(name, log, r, first)


def detach(log: Path, keep: tuple[int, ...]) -> None:
    """Become a daemon's body: stdin/stdout on /dev/null, stderr to ``log``, every fd
    but ``keep`` closed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    keep_set = {0, 1, 2, *keep}
    for fd in _open_fds():
        if fd not in keep_set:
            with contextlib.suppress(OSError):
                os.close(fd)


def _open_fds() -> list[int]:
    return [int(n) for n in os.listdir("/proc/self/fd")]


def never_returns() -> NoReturn:  # pragma: no cover - daemons only
    while True:
        signal.pause()
