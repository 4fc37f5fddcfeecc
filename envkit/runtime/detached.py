"""Processes that outlive their caller: ``run -d``'s container supervisor and a stack's.

Both are started the classic way: a double fork, so the daemon is no child of the caller
and in a session of its own (a terminal closing or Ctrl-C in it does not reach it), with
its working directory at / and its stdio on /dev/null. The daemon tells the caller how
its start went through a pipe, and the caller returns once it knows.
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False  # typing is not imported at run time (`run -d` start-up)
if TYPE_CHECKING:
    from collections.abc import Callable


def run_detached(body: Callable[[int], object]) -> bytes:
    """Run ``body(status_fd)`` in a daemon; return what it wrote to ``status_fd`` before
    closing it or exiting: its report that it is under way, or why it is not (empty when
    it died first). ``body`` should end with ``os._exit``; returning also ends it."""
    status_r, status_w = os.pipe()
    middle = os.fork()
    if middle == 0:  # pragma: no cover - runs in the child
        try:
            os.close(status_r)
            os.setsid()
            if os.fork() == 0:
                _become_daemon()
                body(status_w)
        finally:
            os._exit(0)
    os.close(status_w)
    os.waitpid(middle, 0)
    with os.fdopen(status_r, "rb") as report:
        return report.read()


def _become_daemon() -> None:  # pragma: no cover - runs in the daemon
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.close(null)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
