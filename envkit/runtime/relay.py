"""Pipes in place of the caller's terminal for a container without ``-t``.

A container never gets a file descriptor of the caller's terminal, as with docker and
podman, whose monitors hand the container pipes: with one it could change the
terminal's modes, read what is typed after it exits, or, from a process that made the
terminal its controlling one, push input into the caller's shell (``TIOCSTI``). When
any of the command's stdin, stdout or stderr would be a terminal, envkit gives it a
pipe and copies between that pipe and the terminal in a thread of the caller.
"""

from __future__ import annotations

import os
import select

from envkit.runtime.tty import write_all

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import threading

#: How long output may pause, once the command exited, before the relay stops copying.
DRAIN_SECONDS = 0.25


class TerminalRelay:
    """Copies between the caller's terminal fds and the pipes the container holds.

    Make it with :func:`shield`, start the container with :attr:`stdio`, then call
    :meth:`start`; :meth:`finish` once the container exited copies what is left.
    """

    def __init__(self, stdio: tuple[int, int, int]) -> None:
        self._container_ends: list[int] = []
        self._input: tuple[int, int] | None = None  # (terminal, pipe write end)
        self._outputs: dict[int, int] = {}  # pipe read end -> terminal
        given: list[int] = []
        for index, fd in enumerate(stdio):
            if not os.isatty(fd):
                given.append(fd)
                continue
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            if index == 0:
                self._input = (fd, write_end)
                ours = read_end
            else:
                self._outputs[read_end] = fd
                ours = write_end
            self._container_ends.append(ours)
            given.append(ours)
        #: What the container gets as its 0, 1 and 2: a pipe for each terminal.
        self.stdio = (given[0], given[1], given[2])
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Close this process's copies of the container's ends and start copying."""
        import threading  # lazy for start-up: `envkit run` without a terminal has no threads

        for fd in self._container_ends:
            os.close(fd)
        self._container_ends = []
        self._thread = threading.Thread(target=self._copy, name="envkit-relay", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """Wait until the container's output is copied out, stop copying input, close."""
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join()
        for fd in (*self._container_ends, self._stop_r, self._stop_w):
            os.close(fd)
        if self._input is not None:
            os.close(self._input[1])
        for fd in self._outputs:
            os.close(fd)
        self._container_ends = []
        self._input = None
        self._outputs = {}

    def _copy(self) -> None:
        stopping = False
        while self._outputs or (self._input is not None and not stopping):
            readers = list(self._outputs)
            if self._input is not None and not stopping:
                readers.append(self._input[0])
            if not stopping:
                readers.append(self._stop_r)
            try:
                # Once stopping, a pipe still held by a process left behind (an exec'd
                # command's background child) must not keep the caller waiting.
                ready, _, _ = select.select(readers, [], [], DRAIN_SECONDS if stopping else None)
            except InterruptedError:
                continue
            if not ready:
                return
            if self._stop_r in ready:
                # The command exited: what it wrote is in the pipes, read to their end
                # below; input stops here.
                stopping = True
            for fd in ready:
                if fd in self._outputs:
                    data = os.read(fd, 65536)
                    if data:
                        write_all(self._outputs[fd], data)
                    else:
                        os.close(fd)
                        del self._outputs[fd]
                elif self._input is not None and fd == self._input[0] and not stopping:
                    self._forward_input()

    def _forward_input(self) -> None:
        assert self._input is not None
        terminal, pipe = self._input
        data = os.read(terminal, 65536)
        try:
            if data:
                write_all(pipe, data)
                return
        except BrokenPipeError:
            pass  # nothing in the container reads its stdin any more
        os.close(pipe)  # end of input (or no reader): the container sees EOF
        self._input = None


def shield(stdio: tuple[int, int, int]) -> TerminalRelay | None:
    """A relay for ``stdio`` when any of them is a terminal, else ``None``."""
    return TerminalRelay(stdio) if any(os.isatty(fd) for fd in stdio) else None
