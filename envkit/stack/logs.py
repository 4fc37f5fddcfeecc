"""The output of a stack's services, each line prefixed with ``service |``.

Every service's containers write to one json-lines log (``stacks/<name>/logs/<svc>``,
docker's json-file format, :mod:`envkit.runtime.logs`), restarts included, so the log
of a service reads as one stream. The log rotates as docker's ``max-size``/``max-file``
options do: past :data:`MAX_BYTES` it is renamed ``<svc>.1`` (the older ones shift to
``.2`` ...) and at most :data:`MAX_FILES` files are kept.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TextIO

from envkit.runtime.logs import LogWriter, parse_line
from envkit.stack import state as ss

#: Size past which a service log is rotated.
MAX_BYTES = 10 << 20
#: Log files kept per service: the current one and ``MAX_FILES - 1`` rotated ones.
MAX_FILES = 3


class RotatingLogWriter(LogWriter):
    """A :class:`~envkit.runtime.logs.LogWriter` that rotates its file past
    ``max_bytes``, keeping ``max_files`` files."""

    def __init__(self, path: str, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES) -> None:
        super().__init__(path, max_bytes, max_files)


def files(path: Path) -> list[Path]:
    """The files of a service log that exist, oldest first."""
    rotated = sorted(
        (p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, *([path] if path.exists() else [])]


def records(path: Path) -> Iterator[tuple[str, str, str]]:
    """``(stream, text, time)`` of every record of a service log, rotated files first."""
    for part in files(path):
        try:
            with open(part, encoding="utf-8", errors="replace") as f:
                for line in f:
                    yield parse_line(line)
        except FileNotFoundError:
            continue  # rotated away while reading


def lines_since(path: Path, since: str) -> Iterator[str]:
    """The text of the records written at or after RFC 3339 time ``since`` (the
    runtime's fixed-width UTC format compares as text)."""
    for _, text, when in records(path):
        if when >= since:
            yield text


def tail(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a service log, as text."""
    last: list[str] = []
    for _, text, _ in records(path):
        last.append(text.rstrip("\n"))
        del last[:-count]
    return last


def service_text(stack: str, service: str) -> str:
    """Everything service ``service`` of stack ``stack`` wrote so far (what rotation
    kept)."""
    return "".join(text for _, text, _ in records(ss.stack_dir(stack) / "logs" / service))


class _Follower:
    """Reads what is appended to a service log, across rotations: the open file is
    drained before the new one is opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: IO[str] | None = None
        self.partial = ""

    def read(self, first: bool) -> list[str]:
        text = ""
        if self.file is None:
            if first:
                parts = files(self.path)
                for part in parts[:-1]:
                    text += _read_all(part)
            try:
                self.file = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115
            except FileNotFoundError:
                return self._lines(text)
        text += self.file.read()
        if self._rotated():
            self.file.close()
            self.file = None
            return self._lines(text) + self.read(first=False)
        return self._lines(text)

    def _rotated(self) -> bool:
        assert self.file is not None
        try:
            return os.stat(self.path).st_ino != os.fstat(self.file.fileno()).st_ino
        except FileNotFoundError:
            return False

    def _lines(self, text: str) -> list[str]:
        *lines, self.partial = (self.partial + text).split("\n")
        return lines

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _read_all(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def stream(
    stack: str,
    services: Sequence[str],
    out: TextIO,
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
    poll: float = 0.1,
    gone: Callable[[], bool] | None = None,
) -> None:
    """Write the services' output to ``out`` as ``name | line``; with ``follow``, keep
    writing what they add until the stack is down, ``stop`` is set or ``gone()`` (the
    reader went away) is true."""
    width = max((len(s) for s in services), default=0)
    top = ss.stack_dir(stack) / "logs"
    followers = {s: _Follower(top / s) for s in services}
    first = True
    try:
        while True:
            ending = (
                not follow
                or (stop is not None and stop.is_set())
                or (gone is not None and gone())
                or not _up(stack)
            )
            wrote = False
            for service, follower in followers.items():
                for line in follower.read(first):
                    text = parse_line(line)[1]
                    newline = "" if text.endswith("\n") else "\n"
                    out.write(f"{service.ljust(width)} | {text}{newline}")
                    wrote = True
            first = False
            if wrote:
                out.flush()
            if ending:
                return
            time.sleep(poll)
    finally:
        for follower in followers.values():
            follower.close()


def _up(stack: str) -> bool:
    return (ss.stack_dir(stack) / "state.json").exists()
