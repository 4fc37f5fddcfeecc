"""Writing a json-file log: docker's ``{"log", "stream", "time"}`` records, line by line,
optionally rotated as docker's ``max-size``/``max-file`` options do.

A standard-library-only module with no package import: the stack supervisor's hold
program (:mod:`envkit.stack.hold`), which loads no envkit package to stay small, loads
this file by path; everything else imports it from :mod:`envkit.runtime.logs`.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:

    def _quote(text: str) -> str: ...
else:
    try:  # the C encoder the json package uses; importing json would load re
        from _json import encode_basestring as _quote
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        from json import dumps

        def _quote(text):
            return dumps(text, ensure_ascii=False)


#: Docker's log buffer (moby daemon/logger/copier.go): a line longer than this is logged
#: in pieces of this many bytes, each a record whose ``log`` has no newline (docker's
#: partial messages), so a container writing without newlines cannot grow the writer's
#: memory, and its output shows in the log as it comes.
MAX_LINE = 16 * 1024


def timestamp(now: float | None = None) -> str:
    """RFC 3339 with nanoseconds, UTC (docker's log time format)."""
    now = time.time() if now is None else now
    whole = int(now)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((now - whole) * 1e9):09d}Z"
    )


def record(stream: str, data: bytes) -> bytes:
    """One log line: ``data`` (decoded as UTF-8, bad bytes replaced) as ``json.dumps``
    writes the record with ``ensure_ascii=False``."""
    text = _quote(data.decode("utf-8", errors="replace"))
    return f'{{"log": {text}, "stream": "{stream}", "time": "{timestamp()}"}}\n'.encode()


def _pieces(stream: str, line: bytes) -> tuple[list[bytes], bytes]:
    """The records of the whole :data:`MAX_LINE` pieces at the start of ``line``, and
    the rest of it (shorter than :data:`MAX_LINE`)."""
    whole = len(line) - len(line) % MAX_LINE
    return [record(stream, line[i : i + MAX_LINE]) for i in range(0, whole, MAX_LINE)], line[whole:]


class LogWriter:
    """Appends the output of a container's streams to its log, line by line; past
    ``max_bytes`` (when given) the file is renamed ``<path>.1`` (older ones shift to
    ``.2``...) and at most ``max_files`` files are kept."""

    def __init__(self, path: str, max_bytes: int | None = None, max_files: int = 1) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max(1, max_files)
        self._file = open(path, "ab")  # noqa: SIM115 - closed by close()
        self._size = self._file.tell()
        self._partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        """Write the complete lines of ``data``, and :data:`MAX_LINE` pieces of longer
        ones; keep the rest of a last line for later."""
        data = self._partial.pop(stream, b"") + data
        *lines, rest = data.split(b"\n")
        out: list[bytes] = []
        for line in lines:
            if len(line) >= MAX_LINE:
                pieces, line = _pieces(stream, line)
                out += pieces
            out.append(record(stream, line + b"\n"))
        if len(rest) >= MAX_LINE:
            pieces, rest = _pieces(stream, rest)
            out += pieces
        self._write(out)
        if rest:
            self._partial[stream] = rest

    def close(self) -> None:
        """Write what is left of partial lines and close the file."""
        self._write([record(stream, rest) for stream, rest in self._partial.items()])
        self._partial.clear()
        self._file.close()

    def _write(self, records: list[bytes]) -> None:
        """One write for ``records``, unless the log rotates after one of them."""
        pending: list[bytes] = []
        for line in records:
            pending.append(line)
            self._size += len(line)
            if self.max_bytes is not None and self._size >= self.max_bytes:
                self._file.write(b"".join(pending))
                pending.clear()
                self._rotate()
        if pending:
            self._file.write(b"".join(pending))
            self._file.flush()

    def _rotate(self) -> None:
        self._file.close()  # flushes
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for n in range(self.max_files - 1, 0, -1):
                older = f"{self.path}.{n - 1}" if n > 1 else self.path
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{n}")
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._size = self._file.tell()
