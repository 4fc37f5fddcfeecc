"""Container logs: docker's ``json-file`` format, one JSON object per line.

Each line is ``{"log": "text\\n", "stream": "stdout"|"stderr", "time": RFC 3339}``, as
docker's default log driver writes them, so that every line keeps its stream and time
and a partial last line (no newline yet) survives. ``envkit logs`` prints the ``log``
fields, stdout's to stdout and stderr's to stderr.
"""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Callable, Iterator
from typing import IO


def timestamp(now: float | None = None) -> str:
    """RFC 3339 with nanoseconds, UTC (docker's log time format)."""
    now = time.time() if now is None else now
    whole = int(now)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((now - whole) * 1e9):09d}Z"
    )


class LogWriter:
    """Appends the output of a container's streams to its log, line by line."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        """Write the complete lines of ``data``; keep a partial last line for later."""
        data = self._partial.pop(stream, b"") + data
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._write(stream, line + b"\n")
        if rest:
            self._partial[stream] = rest
        self._file.flush()

    def close(self) -> None:
        """Write what is left of partial lines and close the file."""
        for stream, rest in self._partial.items():
            self._write(stream, rest)
        self._partial.clear()
        self._file.close()

    def _write(self, stream: str, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        record = {"log": text, "stream": stream, "time": timestamp()}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")


def pump(writer: LogWriter, streams: dict[int, str]) -> None:
    """Copy ``fd -> stream name`` pipes into ``writer`` until every one is at EOF."""
    open_fds = dict(streams)
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [])
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: a pty whose last slave closed
                data = b""
            if data:
                writer.feed(open_fds[fd], data)
            else:
                os.close(fd)
                del open_fds[fd]


def records(path: str) -> Iterator[tuple[str, str, str]]:
    """``(stream, text, time)`` of every record in a log; nothing when there is no log."""
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with f:
        for line in f:
            yield parse_line(line)


def parse_line(line: str) -> tuple[str, str, str]:
    """One log line as ``(stream, text, time)``."""
    try:
        data = json.loads(line)
        return str(data["stream"]), str(data["log"]), str(data.get("time", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "stdout", line, ""  # not a record: shown as it is


def text(path: str) -> str:
    """The whole output (stdout and stderr interleaved as they were written)."""
    return "".join(t for _, t, _ in records(path))


def follow(path: str, offset: int, running: Callable[[], bool]) -> Iterator[tuple[str, str, str]]:
    """Records appended after byte ``offset`` while ``running()`` is true, then the rest."""
    buffered = ""
    while True:
        still = running()
        try:
            with open(path, encoding="utf-8") as f:
                f.seek(offset)
                chunk = f.read()
                offset = f.tell()
        except FileNotFoundError:
            chunk = ""
        buffered += chunk
        *complete, buffered = buffered.split("\n")
        for line in complete:
            yield parse_line(line)
        if not still:
            return
        if not chunk:
            time.sleep(0.1)
