"""When and how a detached supervisor enters its hold phase (:mod:`envkit.stack.hold`).

A detached stack supervisor whose stack has been idle for :func:`hold_after` seconds
(no start, stop, restart, health check, readiness probe or control request under way
or due) replaces itself, by ``exec``, with the small hold program, and the hold program
with the full supervisor again at the next event. docs/dev/stack.md tells the whole
story; this module holds the supervisor's side of the ``exec``.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

#: Seconds of idleness before a detached supervisor holds (``ENVKIT_STACK_HOLD_AFTER``).
HOLD_AFTER = 30.0
#: The hold program, run by path: ``python -I -S`` loads no package and no ``site``.
PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hold.py")


def hold_after(text: str | None = None) -> float | None:
    """Seconds of idleness before holding: ``text``, else the ``stack_hold_after``
    setting (``ENVKIT_STACK_HOLD_AFTER``, or config.toml), else :data:`HOLD_AFTER`;
    ``None`` when holding is off (``off``, or not a non-negative number)."""
    if text is None:
        from envkit import settings  # lazy: only the daemon asks; holding's users need not

        text = settings.get("stack_hold_after")
    text = text.strip()
    if not text:
        return HOLD_AFTER
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def supported() -> bool:
    """Whether this kernel and interpreter can hold (pidfds: Linux 5.3)."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def program_argv(
    *,
    listening: int,
    rotate: tuple[int, int],
    watch: Sequence[tuple[int, int]],
    owner: tuple[int, int] | None,
    logs: Sequence[tuple[str, str, str]],
) -> list[str]:
    """The hold program's command line; it resumes as ``python -m envkit.stack.daemon
    --resume LISTENING``."""
    argv = [sys.executable, "-I", "-S", PROGRAM, "--listen", str(listening)]
    argv += ["--rotate", str(rotate[0]), str(rotate[1])]
    if owner is not None:
        argv += ["--owner", f"{owner[0]}:{owner[1]}"]
    for pid, start in watch:
        argv += ["--watch", f"{pid}:{start}"]
    for log, out, err in logs:
        argv += ["--log", log, out, err]
    return [*argv, "--", sys.executable, "-m", "envkit.stack.daemon", "--resume", str(listening)]


def become(argv: Sequence[str], request: Mapping[str, Any], listening: int) -> None:
    """``exec`` the hold program ``argv``, the resume ``request`` (the daemon's start
    request, :func:`envkit.stack.daemon.request_of`) on its stdin and ``listening``
    inherited. The caller blocks ``SIGTERM`` first (one that comes stays pending until
    the hold program waits for it). Returns only if the ``exec`` failed (the error is
    raised)."""
    data = json.dumps(request).encode()
    memfd = os.memfd_create("envkit-resume", 0)
    try:
        os.write(memfd, data)
        os.lseek(memfd, 0, os.SEEK_SET)
        os.dup2(memfd, 0)
    finally:
        os.close(memfd)
    os.set_inheritable(listening, True)
    try:
        os.execv(argv[0], list(argv))
    finally:
        os.set_inheritable(listening, False)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
