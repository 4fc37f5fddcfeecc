"""The container monitor: one process per ``ENVKIT_HOME`` holds every detached container.

``envkit run -d`` (and ``envkit.run(detach=True)``) hand their container to it; it starts
on demand (:mod:`envkit.container.monitor_client`) and exits once it holds no container.
Its process tree is the one docker's shim and podman's conmon give a container::

    monitor ──fork──> intermediate ──fork──> pid 1 (the command)
       ^                   └─ exits once pid 1 is forked
       └── pid 1 is re-parented here (PR_SET_CHILD_SUBREAPER), reaped here

What it does, in one thread around one ``selectors`` loop:

* **start**: a caller sends a :class:`~envkit.runtime.config.ContainerConfig` (its JSON
  form) and the fds of the intermediate's side of the start handshake; the monitor
  forks the intermediate (:func:`envkit.runtime.spawn.launched`), and the caller does
  its own side (id maps, networks) and confirms with ``started`` once the command runs.
* **logs**: the container's stdout and stderr are FIFOs in its dir, given to it opened
  read-write, so that a write never fails for want of a reader while no monitor runs
  (containerd's shim opens its FIFOs the same way); the monitor copies them into the
  json-lines log.
* **exit**: it reaps pid 1, waits for the last output, records the exit code (or
  removes a ``--rm`` container) and takes it off its networks.
* **re-adoption**: a monitor that starts (after ``kill -9`` of the last one, say) takes
  over every detached container that still runs and whose monitor is gone: its log
  goes on from the FIFOs, ``stop``/``exec``/``logs -f`` work, and its exit is seen
  through a pidfd. A process that is not its child has no exit status to give, so the
  record then says :data:`envkit.runtime.state.LOST_EXIT_CODE`, as docker reports an
  exit its daemon missed.

Requests are JSON objects with an ``op`` field, one per ``SOCK_SEQPACKET`` message,
answered through a dispatch table; nothing received is ever unpickled or evaluated.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import sys
from contextlib import suppress

from envkit.host import syscalls
from envkit.host.prctl import PR_SET_CHILD_SUBREAPER, prctl
from envkit.host.unix_address import short_address
from envkit.runtime import init, logs, spawn
from envkit.runtime import state as st
from envkit.runtime.config import ContainerConfig

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: How long an idle monitor waits for the next container before it exits.
IDLE_GRACE = 1.0
#: Largest request accepted (a config with a big environment fits many times over).
MAX_MESSAGE = 1 << 20
#: Names of the socket, lock and log in ``$ENVKIT_HOME/monitor``.
SOCKET, LOCK, LOG = "monitor.sock", "monitor.lock", "monitor.log"
#: The container's output FIFOs in its dir.
FIFOS = {"stdout": "stdout.fifo", "stderr": "stderr.fifo"}


def monitor_dir() -> str:
    """``$ENVKIT_HOME/monitor``: the monitor's socket, lock and log."""
    from envkit.settings import private_dir  # lazy: the monitor process stays small

    return private_dir("monitor")


class Held:
    """One container the monitor holds."""

    __slots__ = ("code", "conn", "dir", "pid", "pidfd", "streams", "writer")

    def __init__(self, directory: str, pid: int, writer: logs.LogWriter) -> None:
        self.dir = directory
        self.pid = pid
        self.writer = writer
        #: fd -> stream name, open until each is at EOF.
        self.streams: dict[int, str] = {}
        #: The caller's connection while it has not confirmed the start.
        self.conn: socket.socket | None = None
        self.code: int | None = None
        self.pidfd: int | None = None


class Monitor:
    """The loop; see the module docstring."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.held: dict[int, Held] = {}  # pid 1's host pid -> container
        self.starting: set[int] = set()  # intermediates not reaped yet
        self.finishers: set[int] = set()
        self.conns: set[socket.socket] = set()
        self.exited: dict[int, int] = {}  # reaped before they were known
        self.me = (os.getpid(), st.process_start(os.getpid()) or 0)
        self.ops: dict[str, Callable[[socket.socket, dict[str, Any], list[int]], None]] = {
            "start": self.op_start,
            "started": self.op_started,
            "ping": self.op_ping,
            "adopt": self.op_adopt,
        }
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_w = wake_w
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(wake_r, selectors.EVENT_READ, self.on_signal)
        self.selector.register(listener, selectors.EVENT_READ, self.on_accept)

    # -- the loop -------------------------------------------------------------------

    def serve(self) -> None:
        """Run until no container, caller or child is left, and no caller came for
        :data:`IDLE_GRACE` seconds."""
        self.adopt_orphans()
        while True:
            busy = self.held or self.starting or self.finishers or self.conns
            events = self.selector.select(None if busy else IDLE_GRACE)
            if not events and not busy:
                return
            for key, _ in events:
                key.data(key.fileobj)
            self.reap_children()

    def on_signal(self, fd: object) -> None:
        assert isinstance(fd, int)
        while True:
            try:
                if not os.read(fd, 512):
                    return
            except BlockingIOError:
                return

    def on_accept(self, _: object) -> None:
        try:
            conn, _addr = self.listener.accept()
        except BlockingIOError:
            return
        self.conns.add(conn)
        self.selector.register(conn, selectors.EVENT_READ, self.on_request)

    def on_request(self, conn: object) -> None:
        assert isinstance(conn, socket.socket)
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 8)
        except OSError:
            data, fds = b"", []
        for fd in fds:
            # Close-on-exec: the start's error pipe must close when the command runs.
            # (recv_fds ignores its flags argument, so MSG_CMSG_CLOEXEC cannot do it.)
            os.set_inheritable(fd, False)
        if not data:
            self.close_conn(conn)
            return
        try:
            request = json.loads(data)
            handler = self.ops[request["op"]]
        except (ValueError, KeyError, TypeError):
            for fd in fds:
                os.close(fd)
            self.reply(conn, {"ok": False, "error": "bad request"})
            return
        try:
            handler(conn, request, fds)
        except Exception as exc:  # one bad request must not end the others' monitor
            for fd in fds:
                with suppress(OSError):
                    os.close(fd)
            self.reply(conn, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def reply(self, conn: socket.socket, answer: dict[str, Any]) -> None:
        with suppress(OSError):
            conn.send(json.dumps(answer).encode())

    def close_conn(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        self.conns.discard(conn)
        conn.close()
        for held in list(self.held.values()):
            if held.conn is conn:
                self.abandon(held)

    def abandon(self, held: Held) -> None:
        """The caller left before it confirmed the start: the container is not started,
        and its record is the caller's to remove (or :func:`envkit.runtime.state.reap`'s)."""
        held.conn = None
        with suppress(OSError):
            os.kill(held.pid, signal.SIGKILL)
        held.dir = ""
        self.maybe_finish(held)

    # -- requests ---------------------------------------------------------------------

    def op_ping(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        self.reply(conn, {"ok": True, "pid": self.me[0], "start": self.me[1]})

    def op_adopt(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        """Take over orphans now: containers whose start outlived their monitor's death
        after this monitor came up (it adopts at its own start too)."""
        self.adopt_orphans()
        self.reply(conn, {"ok": True})

    def op_start(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        """Fork the intermediate of a container the caller is starting."""
        directory = str(request["dir"])
        handshake = fds[: int(request["handshake_fds"])]
        rest = fds[len(handshake) :]
        userns = rest.pop(0) if request.get("userns") else None
        streams: dict[int, str] = {}
        stdio: tuple[int, int, int] | None = None
        child_ends: list[int] = []
        if not request["config"].get("tty"):
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            ends = [null]
            for stream, fifo in FIFOS.items():
                path = os.path.join(directory, fifo)
                os.mkfifo(path, 0o600)
                streams[os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)] = stream
                ends.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            stdio = (ends[0], ends[1], ends[2])
            child_ends = ends
        config = ContainerConfig.from_wire(
            request["config"],
            stdio=stdio,
            userns=None if userns is None else f"/proc/self/fd/{userns}",
        )
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the intermediate
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            spawn.launched(config, str(request["state_dir"]), handshake, report_w)
        for fd in [*fds, *child_ends, report_w]:
            os.close(fd)
        self.starting.add(pid)
        writer = logs.LogWriter(os.path.join(directory, "log"))
        self.selector.register(
            report_r,
            selectors.EVENT_READ,
            lambda fd: self.on_report(fd, directory, writer, streams, conn),
        )
        self.reply(conn, {"ok": True, "intermediate": pid, "pid": self.me[0], "start": self.me[1]})

    def on_report(
        self,
        fd: object,
        directory: str,
        writer: logs.LogWriter,
        streams: dict[int, str],
        conn: socket.socket,
    ) -> None:
        assert isinstance(fd, int)
        text = b""
        with suppress(OSError):
            text = os.read(fd, 32)
        self.selector.unregister(fd)
        os.close(fd)
        if not text.isdigit():  # the intermediate failed: the caller reports why
            writer.close()
            for stream_fd in streams:
                os.close(stream_fd)
            return
        held = Held(directory, int(text), writer)
        held.conn = conn
        self.held[held.pid] = held
        for stream_fd, name in streams.items():
            self.watch_stream(held, stream_fd, name)
        if held.pid in self.exited:
            held.code = self.exited.pop(held.pid)
        if conn not in self.conns:  # the caller is gone already
            self.abandon(held)

    def op_started(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        """The caller saw the command run and wrote the record: the container is ours."""
        pid = int(request["pid"])
        held = self.held.get(pid)
        if held is None or held.conn is not conn:
            for fd in fds:
                os.close(fd)
            self.reply(conn, {"ok": False, "error": f"no container with pid {pid} starting"})
            return
        held.conn = None
        if fds:  # -t: the terminal's master side is the container's output
            os.set_blocking(fds[0], False)
            self.watch_stream(held, fds[0], "stdout")
        self.reply(conn, {"ok": True})
        self.maybe_finish(held)

    # -- output ---------------------------------------------------------------------------

    def watch_stream(self, held: Held, fd: int, name: str) -> None:
        held.streams[fd] = name
        self.selector.register(fd, selectors.EVENT_READ, lambda f: self.on_output(held, f))

    def on_output(self, held: Held, fd: object) -> None:
        assert isinstance(fd, int)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: a terminal whose last user closed it
            data = b""
        if data:
            held.writer.feed(held.streams[fd], data)
            return
        self.selector.unregister(fd)
        os.close(fd)
        del held.streams[fd]
        self.maybe_finish(held)

    # -- exits ------------------------------------------------------------------------------

    def reap_children(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = init.exit_code(status)
            if pid in self.starting:
                self.starting.discard(pid)
            elif pid in self.finishers:
                self.finishers.discard(pid)
            elif pid in self.held:
                self.held[pid].code = code
                self.maybe_finish(self.held[pid])
            else:
                self.exited[pid] = code

    def on_pidfd(self, held: Held, fd: object) -> None:
        """An adopted container (not our child) ended: its exit status is lost."""
        assert isinstance(fd, int)
        self.selector.unregister(fd)
        os.close(fd)
        held.pidfd = None
        held.code = st.LOST_EXIT_CODE
        self.maybe_finish(held)

    def maybe_finish(self, held: Held) -> None:
        """Record the exit once pid 1 is gone, its output read and its start confirmed."""
        if held.code is None or held.streams or held.conn is not None:
            return
        self.held.pop(held.pid, None)
        held.writer.close()
        if held.pidfd is not None:
            self.selector.unregister(held.pidfd)
            os.close(held.pidfd)
        if not held.dir:
            return
        record = st.load(held.dir)
        if record is None:
            return
        if record.networks:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the finisher: leaves the networks
                signal.set_wakeup_fd(-1)
                code = 0
                try:
                    _finish(record, held.code)
                except BaseException as exc:
                    print(f"container {record.name}: finishing failed: {exc}", file=sys.stderr)
                    code = 1
                os._exit(code)
            self.finishers.add(pid)
        else:
            _finish(record, held.code)

    # -- re-adoption ------------------------------------------------------------------------

    def adopt_orphans(self) -> None:
        """Take over every detached container that runs while its monitor is gone."""
        for record in st.all_states():
            if not (record.detached and record.status == st.RUNNING):
                continue
            if st.alive(record.supervisor, record.supervisor_start):
                continue
            if not st.alive(record.pid, record.pid_start) or record.pid in self.held:
                continue
            try:
                pidfd = os.pidfd_open(record.pid)
            except OSError:
                continue
            if st.process_start(record.pid) != record.pid_start:
                os.close(pidfd)
                continue
            held = Held(record.path(), record.pid, logs.LogWriter(record.path("log")))
            held.pidfd = pidfd
            self.held[record.pid] = held
            for name, fifo in FIFOS.items():
                try:
                    fd = os.open(record.path(fifo), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                except OSError:
                    continue
                self.watch_stream(held, fd, name)
            self.selector.register(
                pidfd, selectors.EVENT_READ, lambda f, h=held: self.on_pidfd(h, f)
            )
            record.supervisor, record.supervisor_start = self.me
            record.save()


def _finish(record: st.ContainerState, code: int) -> None:
    """After the container's end: leave its networks, then record the code or ``--rm``."""
    if record.networks:
        from envkit.network.attach import Attachment  # lazy: only networked containers

        Attachment(record.name, tuple(record.networks)).release()
    with suppress(OSError):
        os.rmdir(record.path("rt"))
    if record.auto_remove:
        st.remove(record, exit_code=code)
    else:
        record.mark_exited(code)


def main() -> int:
    """Run the monitor of ``$ENVKIT_HOME`` (``python -m envkit.container.monitor``).

    fd 3, when open, is told ``ready`` once the socket accepts requests, or ``busy``
    when another monitor holds this home's lock.
    """
    ready: int | None = 3
    try:
        os.fstat(3)
    except OSError:
        ready = None
    syscalls.close_all_but({0, 1, 2} | ({3} if ready is not None else set()))
    directory = monitor_dir()
    log = os.open(os.path.join(directory, LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 2)
    os.close(log)
    lock = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _tell(ready, b"busy")
        return 0
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    path = os.path.join(directory, SOCKET)
    with suppress(OSError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    with short_address(path) as address:
        listener.bind(address)
    listener.listen(64)
    listener.setblocking(False)
    monitor = Monitor(listener)
    _tell(ready, b"ready")
    try:
        monitor.serve()
    finally:
        # Unlinked under the lock: a caller that finds no socket starts the next monitor.
        with suppress(OSError):
            os.unlink(path)
        listener.close()
    return 0


def _tell(fd: int | None, word: bytes) -> None:
    if fd is not None:
        with suppress(OSError):
            os.write(fd, word)
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
