"""A small Redis client (RESP2 over TCP): commands as arrays of bulk strings, replies
read back; enough for the database pool to empty a test's database index."""

from __future__ import annotations

import contextlib
import socket

from envkit.errors import EnvkitError

Reply = str | int | None | list["Reply"]


class RespConnection:
    """One connection to a Redis server; :meth:`command` sends one command and returns
    its reply (``-ERR`` replies raise :class:`EnvkitError`)."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.where = f"redis {host}:{port}"
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def command(self, *words: str) -> Reply:
        """Send ``words`` as one command; its reply."""
        self._sock.sendall(encode(words))
        return self._reply()

    def interrupt(self) -> None:
        """Shut the socket down: a call waiting on the server (in another thread)
        returns at once with an error."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def _reply(self) -> Reply:
        line = self._line()
        kind, rest = line[:1], line[1:].decode(errors="replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            raise EnvkitError(f"{self.where}: {rest}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._exactly(size + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise EnvkitError(f"{self.where}: unexpected reply {line[:80]!r}")

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise EnvkitError(f"{self.where}: the server closed the connection")
        self._buffer += chunk


def encode(words: tuple[str, ...] | list[str]) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
