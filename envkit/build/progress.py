"""Build progress: a live view on a terminal, plain lines otherwise, or nothing.

Every step has an id (``#N``) and a label (``[app 3/5] RUN make``). The executor reports
``start``, ``output`` (one line of the step's output, secrets already masked),
``cached``, ``done`` and ``failed``; stages run in threads, so every reporter locks.

* :class:`PlainProgress` writes one line per event (``#3 [app 3/5] RUN make``,
  ``#3 | compiling``, ``#3 DONE 1.2s``), as ``docker build --progress=plain`` does.
* :class:`LiveProgress` redraws the steps in place on a terminal: cached, running with the
  tail of its output, done with its time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque

from envkit.records import Record, field

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import TextIO

TAIL = 6


class Progress:
    """The reporter interface; this base reports nothing (the Python API's default)."""

    def start(self, sid: int, label: str) -> None:
        """Step ``sid`` starts executing."""

    def cached(self, sid: int, label: str) -> None:
        """Step ``sid`` was found in the cache."""

    def output(self, sid: int, line: str) -> None:
        """One line of output of step ``sid``."""

    def done(self, sid: int, seconds: float) -> None:
        """Step ``sid`` finished."""

    def failed(self, sid: int, message: str) -> None:
        """Step ``sid`` failed."""

    def note(self, text: str) -> None:
        """A line about the build as a whole (the image id, the tag)."""

    def close(self) -> None:
        """The build is over."""


class PlainProgress(Progress):
    """One line per event on ``stream``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def start(self, sid: int, label: str) -> None:
        self._line(f"#{sid} {label}")

    def cached(self, sid: int, label: str) -> None:
        self._line(f"#{sid} {label}\n#{sid} CACHED")

    def output(self, sid: int, line: str) -> None:
        self._line(f"#{sid} | {line}")

    def done(self, sid: int, seconds: float) -> None:
        self._line(f"#{sid} DONE {seconds:.1f}s")

    def failed(self, sid: int, message: str) -> None:
        self._line(f"#{sid} ERROR {message}")

    def note(self, text: str) -> None:
        self._line(text)


class _Step(Record):
    label: str
    state: str = "running"  # running, cached, done, failed
    began: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))


class LiveProgress(Progress):
    """Steps redrawn in place (ANSI cursor movement) at most ten times a second."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._steps: dict[int, _Step] = {}
        self._drawn = 0
        self._last = 0.0

    def start(self, sid: int, label: str) -> None:
        with self._lock:
            self._steps[sid] = _Step(label)
            self._draw(force=True)

    def cached(self, sid: int, label: str) -> None:
        with self._lock:
            self._steps[sid] = _Step(label, state="cached")
            self._draw(force=True)

    def output(self, sid: int, line: str) -> None:
        with self._lock:
            step = self._steps.get(sid)
            if step is not None:
                step.tail.append(line)
                self._draw()

    def done(self, sid: int, seconds: float) -> None:
        with self._lock:
            step = self._steps.get(sid)
            if step is not None:
                step.state, step.seconds = "done", seconds
                step.tail.clear()
            self._draw(force=True)

    def failed(self, sid: int, message: str) -> None:
        with self._lock:
            step = self._steps.get(sid)
            if step is not None:
                step.state = "failed"
                step.tail.append(message)
            self._draw(force=True)

    def note(self, text: str) -> None:
        with self._lock:
            self._draw(force=True)
            self.stream.write(text + "\n")
            self.stream.flush()
            self._drawn = 0

    def close(self) -> None:
        with self._lock:
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 120
        lines: list[str] = []
        for sid in sorted(self._steps):
            step = self._steps[sid]
            if step.state == "cached":
                status = "CACHED"
            elif step.state == "done":
                status = f"DONE {step.seconds:.1f}s"
            elif step.state == "failed":
                status = "ERROR"
            else:
                status = f"{now - step.began:.1f}s"
            lines.append(f"#{sid} {step.label}"[: width - 12].ljust(width - 12) + f" {status}")
            if step.state in ("running", "failed"):
                lines += [f"   | {t}"[:width] for t in step.tail]
        out = "\x1b[1A\x1b[2K" * self._drawn + "".join(f"\r\x1b[2K{line}\n" for line in lines)
        self.stream.write(out)
        self.stream.flush()
        self._drawn = len(lines)


def for_stream(stream: TextIO | None = None, mode: str = "auto") -> Progress:
    """``auto``: live on a terminal, plain otherwise; or ``plain``, ``tty``, ``quiet``."""
    target = stream or sys.stderr
    if mode == "quiet":
        return Progress()
    if mode == "tty" or (mode == "auto" and target.isatty()):
        return LiveProgress(target)
    return PlainProgress(target)
