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

from envkit.runtime.logfile import LogWriter, timestamp

__all__ = ["LogWriter", "follow", "parse_line", "pump", "records", "text", "timestamp"]


def pump(writer: LogWriter, streams: dict[int, str], stop: int | None = None) -> None:
    """Copy ``fd -> stream name`` pipes into ``writer`` until every one is at EOF, or
    until descriptor ``stop`` is readable (then the pipes are closed, what is in them
    left for another reader)."""
    open_fds = dict(streams)
    watched = [*open_fds, *([] if stop is None else [stop])]
    while open_fds:
        ready, _, _ = select.select(watched, [], [])
        for fd in ready:
            if fd == stop:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: a pty whose last slave closed
                data = b""
            if data:
                writer.feed(open_fds[fd], data)
            else:
                os.close(fd)
                del open_fds[fd]
                watched.remove(fd)
        if stop in ready:
            for fd in open_fds:
                os.close(fd)
            return


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
