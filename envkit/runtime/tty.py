"""The host side of ``-t``: connect the caller's terminal to a container's pty master.

While attached the caller's terminal is in raw mode, so every key (Ctrl-C included)
goes to the container's terminal, whose line discipline turns it into a signal for the
container's foreground process group; the mode is restored on the way out. A SIGWINCH
copies the caller's window size to the container's terminal (TIOCSWINSZ).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import struct
import termios
from contextlib import suppress

_WINSIZE_BYTES = 8


def copy_window_size(source: int, master: int) -> None:
    """Give the pty ``master`` the window size of terminal ``source`` (if it is one)."""
    with suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * _WINSIZE_BYTES)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def window_size(*fds: int) -> tuple[int, int]:
    """``(rows, columns)`` of the first of ``fds`` that is a terminal, else ``(0, 0)``."""
    for fd in fds:
        with suppress(OSError):
            rows, cols, _, _ = struct.unpack(
                "HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE_BYTES)
            )
            return rows, cols
    return 0, 0


def attach(master: int, stdin: int | None = 0, stdout: int = 1) -> None:
    """Copy ``stdin`` to ``master`` and ``master`` to ``stdout`` until the pty closes.

    ``stdin`` ``None`` attaches the output only (``-t`` without ``-i``). Returns when
    every process holding the terminal's slave side has exited.
    """
    saved = None
    if stdin is not None and os.isatty(stdin):
        import tty  # lazy for start-up: only an interactive terminal

        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    source = stdin if stdin is not None and os.isatty(stdin) else stdout
    copy_window_size(source, master)
    previous = signal.getsignal(signal.SIGWINCH)
    with suppress(ValueError):  # not the main thread: no resize forwarding
        signal.signal(signal.SIGWINCH, lambda _s, _f: copy_window_size(source, master))
    try:
        _copy(master, stdin, stdout)
    finally:
        with suppress(ValueError):
            signal.signal(signal.SIGWINCH, previous)
        if saved is not None and stdin is not None:
            termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)


def _copy(master: int, stdin: int | None, stdout: int) -> None:
    readers = [master] if stdin is None else [master, stdin]
    while True:
        try:
            ready, _, _ = select.select(readers, [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: the last slave fd closed
                    raise
                data = b""
            if not data:
                return
            write_all(stdout, data)
        if stdin is not None and stdin in ready:
            data = os.read(stdin, 65536)
            if data:
                write_all(master, data)
            else:
                write_all(master, b"\x04")  # end of input: the terminal's EOF (Ctrl-D)
                readers.remove(stdin)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, retrying short and interrupted writes."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
