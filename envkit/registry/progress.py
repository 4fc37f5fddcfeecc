"""Per-layer transfer progress: a live line per layer on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time

from envkit.records import Record

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import TextIO

REDRAW_SECONDS = 0.1


def short(digest: str) -> str:
    """The 12 hex characters docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]


def human(size: float) -> str:
    """``12.3MB``-style sizes, as docker prints them (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return f"{size:.1f}GB"


class _Line(Record):
    digest: str
    size: int
    done: int = 0
    status: str = "Waiting"


class Progress:
    """Reports transfers of blobs; thread-safe. ``Progress.silent()`` reports nothing."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self._stream = stream
        self._live = bool(stream is not None and (stream.isatty() if live is None else live))
        self._lines: dict[str, _Line] = {}
        self._drawn = 0
        self._last = 0.0
        self._lock = threading.Lock()

    @classmethod
    def silent(cls) -> Progress:
        """A reporter that prints nothing (library use)."""
        return cls(None)

    def message(self, text: str) -> None:
        """Print one line of text (outside the live block)."""
        if self._stream is None:
            return
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()
            self._drawn = 0

    def start(self, digest: str, size: int, status: str) -> None:
        """A blob transfer begins (or is found unnecessary, with a final ``status``)."""
        with self._lock:
            self._lines[digest] = _Line(digest, size, status=status)
            self._redraw(force=True)

    def advance(self, digest: str, done: int) -> None:
        """``done`` bytes of the blob are transferred in all."""
        with self._lock:
            line = self._lines.get(digest)
            if line is not None:
                line.done = done
                self._redraw(force=False)

    def finish(self, digest: str, status: str) -> None:
        """The blob is complete; prints a plain line when not on a terminal."""
        with self._lock:
            line = self._lines.setdefault(digest, _Line(digest, 0))
            line.status, line.done = status, line.size
            if self._live:
                self._redraw(force=True)
            elif self._stream is not None:
                self._stream.write(f"{short(digest)}: {status}\n")
                self._stream.flush()

    def _redraw(self, *, force: bool) -> None:
        if not self._live or self._stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last < REDRAW_SECONDS:
            return
        self._last = now
        out = [f"\x1b[{self._drawn}F"] if self._drawn else []
        for line in self._lines.values():
            text = f"{short(line.digest)}: {line.status}"
            if line.status in ("Downloading", "Uploading") and line.size:
                width = 30
                filled = width * line.done // line.size
                bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled)
                text += f" [{bar}] {human(line.done)}/{human(line.size)}"
            out.append(f"\x1b[2K{text}\n")
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn = len(self._lines)


def for_terminal() -> Progress:
    """The reporter the CLI uses: stdout, live when it is a terminal."""
    return Progress(sys.stdout)
