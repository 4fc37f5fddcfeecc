"""The network daemon's side of its netlink worker (:mod:`envkit.network.netlink_worker`):
start it on demand, hand it requests one at a time, let it go when idle.

pyroute2 costs ~10 MB of memory and 0.1-0.2 s of import, and the daemon needs netlink
only while networks and containers are set up or torn down. So the daemon keeps no
pyroute2: a child process does the netlink work and exits :data:`IDLE_SECONDS` after
its last request; the next request starts a new one. The daemon forks the first at its
own start, while it is single-threaded (``fork=``), so that it imports pyroute2 while
the daemon and its caller set up the rest (the first ``setup`` waits for it); later
ones are exec'd (``python -m``; the daemon has threads then).

One thread of the daemon owns the worker (:class:`NetlinkWorker`): it spawns it, sends
the requests the handler threads queue, reads the answers, and closes the worker's
socket after :data:`IDLE_SECONDS` without a request, on which the worker exits. One
owner means no race between a request and the worker's exit. It is also the worker's
parent thread for the kernel, which matters twice: the worker's ``PR_SET_PDEATHSIG``
fires when the thread that spawned it ends (this one never does before the daemon), and
the ambient capabilities the worker needs are raised on this thread only
(capabilities are per thread).

A worker that dies or stops answering during a request gives that request a clear
:class:`~envkit.errors.NetworkError` (how it ended; its stderr goes to
``network/logs/netlink-worker.log``); the next request starts a new worker.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence

from envkit.host import syscalls
from envkit.host.prctl import PR_CAP_AMBIENT, prctl
from envkit.network import control, state

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

#: Seconds without a request after which the worker is let go (it exits). A new worker
#: costs the next networked start ~0.1 s (81 -> 182 ms for a ``run --rm -p`` beside a
#: running stack, measured with 3 s): a minute keeps it for commands a person types one
#: after another, and a stack left running still sheds the worker's ~10 MB.
IDLE_SECONDS = 60.0
#: The module the worker runs (``python -m``).
WORKER_MODULE = "envkit.network.netlink_worker"
#: ``CAP_NET_ADMIN`` (netlink changes) and ``CAP_SYS_ADMIN`` (``setns`` into the holder's
#: and the containers' network namespaces), in the holder's user namespace.
NETLINK_CAPS = frozenset({12, 21})
#: Seconds a let-go worker has to exit before it is killed.
EXIT_GRACE = 5.0

_PR_CAP_AMBIENT_RAISE = 2


class _Job:
    """One request queued for the worker, and its answer once there."""

    def __init__(self, op: str, args: dict[str, Any], fds: Sequence[int]) -> None:
        self.op, self.args, self.fds = op, args, list(fds)
        self.reply: dict[str, Any] = {}
        self.done = threading.Event()


class _Running:
    """A spawned worker: its pid, a pidfd of it, our end of its socket."""

    def __init__(self, pid: int, conn: socket.socket) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.conn = conn
        self.greeted = False


class NetlinkWorker:
    """The daemon's netlink worker, started on demand and let go when idle.

    ``netns`` is an fd of the holder's network namespace (the worker gets a copy).
    ``module``, ``idle`` and ``caps`` are the worker's module, :data:`IDLE_SECONDS` and
    the capabilities passed on (:data:`NETLINK_CAPS`; none for a test's fake worker);
    ``timeout`` bounds the wait for one answer (a worker that exceeds it is killed).

    With ``fork``, the first worker is forked here, and runs ``fork(parent_pid, conn,
    netns)`` (:func:`envkit.network.netlink_worker.run`): only for a single-threaded
    caller whose calling thread lives as long as the process (the worker's
    ``PR_SET_PDEATHSIG`` follows that thread).
    """

    def __init__(
        self,
        netns: int,
        *,
        module: str = WORKER_MODULE,
        idle: float = IDLE_SECONDS,
        caps: frozenset[int] = NETLINK_CAPS,
        timeout: float = control.TIMEOUT,
        fork: Callable[[int, socket.socket, int], object] | None = None,
    ) -> None:
        self.netns = netns
        self.module = module
        self.idle = idle
        self.caps = caps
        self.timeout = timeout
        #: pids of the last workers started, oldest first (for tests and debugging).
        self.spawned: collections.deque[int] = collections.deque(maxlen=8)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._worker: _Running | None = None
        self._caps_passed = False
        if fork is not None:
            self._worker = self._fork(fork)
        threading.Thread(target=self._own, daemon=True, name="envkit-netlink-owner").start()

    # -- what the daemon's threads call ---------------------------------------------------

    def start(self) -> None:
        """Have a worker start now if none runs (returns at once)."""
        self._jobs.put(None)

    def call(self, op: str, args: dict[str, Any], fds: Sequence[int] = ()) -> Any:
        """The worker's answer to ``op``; its error raised as :class:`NetworkError`.
        ``fds`` stay the caller's (they are copied to the worker)."""
        job = _Job(op, args, fds)
        self._jobs.put(job)
        job.done.wait()
        return control.result_of(job.reply)

    def running(self) -> int | None:
        """The pid of the worker if one runs (spawned and not let go), else ``None``."""
        worker = self._worker
        return None if worker is None else worker.pid

    # -- the owner thread -------------------------------------------------------------------

    def _own(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.idle if self._worker is not None else None)
            except queue.Empty:
                self._let_go()
                continue
            if self._worker is None:
                try:
                    self._worker = self._spawn()
                except OSError as exc:
                    if job is not None:
                        job.reply = {
                            "error": f"cannot start the netlink worker: {exc.strerror or exc}"
                        }
                        job.done.set()
                    continue
            if job is not None:
                job.reply = self._ask(self._worker, job)
                job.done.set()

    def _spawn(self) -> _Running:
        if self.caps and not self._caps_passed:
            _raise_ambient(self.caps)
            self._caps_passed = True
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        netns = -1
        try:
            netns = os.dup(self.netns)
            # Inheritable for this spawn only; no other thread of the daemon spawns.
            os.set_inheritable(theirs.fileno(), True)
            os.set_inheritable(netns, True)
            argv = [sys.executable, "-m", self.module, str(os.getpid())]
            argv += [str(theirs.fileno()), str(netns)]
            log = log_path()
            log.parent.mkdir(parents=True, exist_ok=True)
            stderr = (
                os.POSIX_SPAWN_OPEN,
                2,
                str(log),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                0o600,
            )
            pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=[stderr])
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
            if netns >= 0:
                os.close(netns)
        mine.settimeout(self.timeout)
        self.spawned.append(pid)
        return _Running(pid, mine)

    def _fork(self, body: Callable[[int, socket.socket, int], object]) -> _Running:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log = log_path()
        log.parent.mkdir(parents=True, exist_ok=True)
        stderr = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker
            try:
                os.dup2(stderr, 2)
                syscalls.close_all_but({0, 1, 2, theirs.fileno(), self.netns})
                body(parent, theirs, self.netns)
            finally:
                os._exit(1)
        os.close(stderr)
        theirs.close()
        mine.settimeout(self.timeout)
        self.spawned.append(pid)
        return _Running(pid, mine)

    def _ask(self, worker: _Running, job: _Job) -> dict[str, Any]:
        """``job`` answered by ``worker``; if it fails to, it is ended and the answer
        says how it ended."""
        try:
            if not worker.greeted:
                greeting, _ = control.receive(worker.conn, 0)
                if "error" in greeting:
                    self._end(worker, kill=True)
                    return {"error": greeting["error"], "hint": _hint()}
                worker.greeted = True
            control.send(worker.conn, {"op": job.op, "args": job.args}, job.fds)
            reply, fds = control.receive(worker.conn, 0)
            for fd in fds:
                os.close(fd)
            return reply  # type: ignore[no-any-return]
        except (EOFError, OSError, ValueError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            how = self._end(worker, kill=True)
            what = f"did not answer within {self.timeout:g} s" if timed_out else how
            return {
                "error": f"the network daemon's netlink worker {what} during {job.op!r}",
                "hint": f"{_hint()}; the next request starts a new worker",
            }

    def _let_go(self) -> None:
        """Idle: close the worker's socket, on which it exits; reap it."""
        if self._worker is not None:
            self._end(self._worker, kill=False)

    def _end(self, worker: _Running, kill: bool) -> str:
        """Close ``worker``'s socket, kill it if ``kill`` (or if it does not exit within
        :data:`EXIT_GRACE`), reap it; how it ended (``"exited with status 1"``)."""
        worker.conn.close()
        # poll, not select: the daemon's descriptors may pass 1023.
        poll = select.poll()
        poll.register(worker.pidfd, select.POLLIN)
        if kill or not poll.poll(EXIT_GRACE * 1000):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(worker.pidfd, signal.SIGKILL)
        os.close(worker.pidfd)
        _, status = os.waitpid(worker.pid, 0)
        self._worker = None
        return _ended(status)


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def log_path() -> Path:
    """Where the workers' stderr goes (appended): ``network/logs/netlink-worker.log``."""
    return state.root() / "logs" / "netlink-worker.log"


def _hint() -> str:
    return f"see {log_path()}"


def _raise_ambient(caps: frozenset[int]) -> None:
    """Keep ``caps`` across ``execve`` for the processes this thread spawns: in the
    inheritable and ambient sets of this thread (which drops every other capability: it
    only spawns workers)."""
    syscalls.capset(caps, caps, caps)
    for cap in sorted(caps):
        prctl(PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap)
