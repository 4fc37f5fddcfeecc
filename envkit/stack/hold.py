"""The hold phase of a stack supervisor: a small program that keeps an idle stack.

A detached supervisor (:mod:`envkit.stack.daemon`) holds its whole envkit for the life
of its stack, ~12 MB, though an idle stack needs almost none of it. Once nothing has
happened for a while (:mod:`envkit.stack.holding` decides), the supervisor ``exec``s
this program in its place: the same pid, so the containers stay its children and
their exit statuses wait for it. It

- watches a pidfd of each container's pid 1 and of the stack's owner;
- pumps the containers' named pipes into the services' logs (the supervisor's own
  writer, :mod:`envkit.runtime.logfile`, loaded by path);
- keeps the control socket's listening descriptor, without accepting.

Any event (a container or the owner gone, a connection waiting, ``SIGTERM``) makes it
``exec`` the full supervisor again (``python -m envkit.stack.daemon --resume FD``),
which takes the stack over as after a lost supervisor, but with the children's real
exit codes; a pending ``SIGTERM`` stays pending through the ``exec``.

Run as ``python -I -S hold.py``: it loads a few standard modules and that one file,
not the envkit package, not ``site``, not even ``signal``'s enums, which is what makes
it small (~5 MB PSS beside the ~12 MB of the full supervisor). Arguments::

    --rotate MAX_BYTES MAX_FILES --listen FD [--owner PID:START]
    [--watch PID:START]... [--log LOG OUT_FIFO ERR_FIFO]... -- COMMAND...
"""

import os
import select
import sys

# The C module under signal: signal's enums load enum, functools and collections
# (~1 MB of this small process, measured).
TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import signal

    from envkit.runtime.logfile import LogWriter
else:
    try:
        import _signal as signal
    except ImportError:  # pragma: no cover - an interpreter without it
        import signal
    # The log writer, by path: importing envkit.runtime would load the envkit package.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "runtime"))
    try:
        from logfile import LogWriter
    finally:
        del sys.path[0]

_terminate = False


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (field 22 of its stat), ``None`` if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


class Options:
    """The command line (see the module's docstring)."""

    def __init__(self, argv: list[str]) -> None:
        self.listen = -1
        self.max_bytes, self.max_files = 10 << 20, 3
        self.watch: list[tuple[int, int]] = []
        self.logs: list[tuple[str, str, str]] = []
        self.command: list[str] = []
        args = iter(argv)
        for arg in args:
            if arg == "--":
                self.command = list(args)
            elif arg == "--listen":
                self.listen = int(next(args))
            elif arg == "--rotate":
                self.max_bytes, self.max_files = int(next(args)), int(next(args))
            elif arg in ("--owner", "--watch"):
                pid, start = next(args).split(":")
                self.watch.append((int(pid), int(start)))
            elif arg == "--log":
                self.logs.append((next(args), next(args), next(args)))
            else:
                raise ValueError(f"unknown argument {arg!r}")
        if not self.command:
            raise ValueError("no command to resume with")


def _on_terminate(signum: int, frame: object) -> None:
    global _terminate
    _terminate = True


def hold(options: Options) -> None:
    """Pump the logs until an event: a watched process gone, a connection waiting on
    the listening socket, ``SIGTERM``; or a failure of its own."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, _on_terminate)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    poller = select.poll()
    poller.register(wake_r, select.POLLIN)
    poller.register(options.listen, select.POLLIN)
    for pid, start in options.watch:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        if process_start(pid) != start:
            return  # gone, its pid taken by another process
        poller.register(fd, select.POLLIN)
    pipes: dict[int, tuple[LogWriter, str]] = {}
    logs: list[LogWriter] = []
    try:
        for path, out, err in options.logs:
            log = LogWriter(path, options.max_bytes, options.max_files)
            logs.append(log)
            for fifo, stream in ((out, "stdout"), (err, "stderr")):
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                pipes[fd] = (log, stream)
                poller.register(fd, select.POLLIN)
        while not _terminate:
            for fd, _ in poller.poll():
                if fd not in pipes:
                    return
                log, stream = pipes[fd]
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:  # taken by another reader of the pipe
                    continue
                if data:
                    log.feed(stream, data)
                else:
                    poller.unregister(fd)
                    os.close(fd)
                    del pipes[fd]
    finally:
        for log in logs:
            log.close()


def main() -> None:  # pragma: no cover - the process itself; tests run it
    """Hold, then become the full supervisor again, whatever happened."""
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1 :]
    try:
        hold(Options(argv))
    except BaseException as exc:  # the supervisor resumes and takes over
        print(f"envkit hold: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        if _terminate:
            os.kill(os.getpid(), signal.SIGTERM)  # pending through the exec
        os.lseek(0, 0, os.SEEK_SET)  # the resume request, read again from the start
        os.execv(command[0], command)


if __name__ == "__main__":
    main()
