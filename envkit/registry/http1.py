"""HTTP/1.1 on one connection: a request out, its response in.

The registry's transport speaks HTTP through this module instead of :mod:`http.client`,
whose import costs ~30 ms (it parses headers with the :mod:`email` package and imports
:mod:`ssl` even for plain HTTP): more than the network part of a pull. It covers what a
registry client needs and nothing else: one request at a time per connection (no
pipelining), ``Content-Length``, chunked and close-delimited bodies, interim 1xx answers,
obsolete header folding, and a clear :class:`IncompleteBody` when a connection ends short
of the body it announced (where ``http.client`` returns short data quietly).

Plain connections are made with :mod:`_socket`, the C module under :mod:`socket`:
``socket``'s own import costs ~8 ms (it builds enums of every address family and
socket option) and TLS, which needs it, imports it anyway.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Protocol

    class Readable(Protocol):
        """A request body streamed from a file-like object."""

        def read(self, n: int, /) -> bytes: ...

    class Socket(Protocol):
        """What a connection uses of a socket (plain or TLS)."""

        def sendall(self, data: bytes, /) -> None: ...
        def recv(self, n: int, /) -> bytes: ...
        def close(self) -> None: ...


#: Bytes read from the socket at once for status and header lines.
RECV = 1 << 16
#: Bytes of a streamed request body sent at once.
SEND_BLOCK = 1 << 20
#: A header line (or chunk-size line) longer than this is refused, as http.client does.
MAX_LINE = 1 << 16
MAX_HEADERS = 100
_NO_BODY_STATUS = frozenset({204, 304})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BAD_NAME_CHARS = frozenset(' \t\r\n:"(),/;<=>?@[\\]{}')


#: What :func:`connect` raises when the host name does not resolve (``socket.gaierror``).
ResolveError = _socket.gaierror


class ProtocolError(Exception):
    """The server broke HTTP/1.1: a malformed status line, header or chunk."""


class RemoteClosed(ProtocolError):
    """The connection closed before a response began (as an idle keep-alive connection
    the server dropped does)."""


class IncompleteBody(ProtocolError):
    """The connection ended before the whole body it announced had arrived."""


def connect(host: str, port: int, timeout: float) -> _socket.socket:
    """A TCP connection to ``host:port``, trying each address the name resolves to
    (what :func:`socket.create_connection` does). Raises :class:`OSError` (a
    ``gaierror`` when the name does not resolve)."""
    # A str host goes through the idna codec (and its imports); an ASCII one needs none.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    last: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            # Request heads and bodies are sent in separate writes: no Nagle delay.
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last or OSError(f"{host} resolves to no address")


class Answer:
    """A response's status line and headers; its body is read through :attr:`body`."""

    __slots__ = ("body", "headers", "reason", "status", "version", "will_close")

    def __init__(
        self,
        status: int,
        reason: str,
        version: str,
        headers: list[tuple[str, str]],
        body: Body,
        will_close: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = body
        #: The server ends the connection after this answer (it cannot be reused).
        self.will_close = will_close


class Connection:
    """One HTTP/1.1 connection to ``host`` (the ``Host`` header's value) over ``sock``.

    :meth:`request` sends a request and returns its :class:`Answer`; the answer's body
    must be read to its end (or the connection closed) before the next request.
    """

    def __init__(self, sock: Socket, host: str) -> None:
        self.sock: Socket | None = sock
        self.host = host
        self._buffer = bytearray()

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | Readable | None = None,
        length: int | None = None,
    ) -> Answer:
        """Send ``method target`` with ``headers`` and ``body`` (bytes, or a file-like
        streamed in blocks, ``length`` bytes long), then read the answer's head."""
        self.send(method, target, headers, body, length)
        return self.answer(method)

    def send(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | Readable | None = None,
        length: int | None = None,
    ) -> None:
        """Send one request (see :meth:`request`)."""
        sock = self._socket()
        lines = [f"{method} {target} HTTP/1.1"]
        given = {name.lower() for name in headers}
        if "host" not in given:
            lines.append(f"Host: {self.host}")
        if "accept-encoding" not in given:
            lines.append("Accept-Encoding: identity")
        if "content-length" not in given and "transfer-encoding" not in given:
            if isinstance(body, bytes):
                length = len(body)
            if length is not None:
                lines.append(f"Content-Length: {length}")
            elif method in _BODY_METHODS:
                lines.append("Content-Length: 0")
        for name, value in headers.items():
            lines.append(f"{_checked_name(name)}: {_checked_value(name, value)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if body is None:
            sock.sendall(head)
        elif isinstance(body, bytes):
            if len(body) <= RECV:
                sock.sendall(head + body)
            else:
                sock.sendall(head)
                sock.sendall(body)
        else:
            sock.sendall(head)
            while block := body.read(SEND_BLOCK):
                sock.sendall(block)

    def answer(self, method: str) -> Answer:
        """Read the head of the answer to a ``method`` request (interim 1xx answers
        are skipped)."""
        while True:
            line = self.read_line()
            if not line:
                raise RemoteClosed("the server closed the connection without an answer")
            version, status, reason = _status_line(line)
            headers = self._headers()
            if 100 <= status < 200 and status != 101:
                continue
            break
        body, will_close = _framing(self, method, status, version, headers)
        return Answer(status, reason, version, headers, body, will_close)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    # -- reading -------------------------------------------------------------------------
    def _socket(self) -> Socket:
        if self.sock is None:
            raise OSError("the connection is closed")
        return self.sock

    def read_line(self) -> bytes:
        """One line up to and with its ``\\n``; what is left (or b"") at the end."""
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                return line
            if len(buffer) > MAX_LINE:
                raise ProtocolError(f"a header line longer than {MAX_LINE} bytes")
            start = len(buffer)
            data = self._socket().recv(RECV)
            if not data:
                line = bytes(buffer)
                buffer.clear()
                return line
            buffer += data

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes (at least one unless the connection has ended): what is
        buffered first, else what one ``recv`` returns."""
        buffer = self._buffer
        if buffer:
            data = bytes(buffer[:n])
            del buffer[:n]
            return data
        return self._socket().recv(n)

    def _headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        while True:
            line = self.read_line()
            if not line.endswith(b"\n"):
                raise ProtocolError("the connection closed in the middle of the headers")
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                return headers
            if text[0] in " \t":
                # Obsolete line folding (RFC 9112 5.2): a continuation of the last value.
                if not headers:
                    raise ProtocolError(f"a header continuation line first: {text!r}")
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {text.strip()}".strip())
                continue
            if len(headers) >= MAX_HEADERS:
                raise ProtocolError(f"more than {MAX_HEADERS} headers")
            name, colon, value = text.partition(":")
            if not colon or not name or not _valid_name(name):
                raise ProtocolError(f"malformed header line {text!r}")
            headers.append((name, value.strip()))


class Body:
    """A response body in the connection's framing. :meth:`read` returns ``b""`` only at
    its end and raises :class:`IncompleteBody` when the connection ends before it."""

    __slots__ = ("_chunk_left", "_conn", "_mode", "done", "received", "remaining")

    def __init__(self, conn: Connection, mode: str, length: int = 0) -> None:
        self._conn = conn
        self._mode = mode  # "none", "length", "chunked" or "close"
        #: Bytes still expected ("length" mode).
        self.remaining = length
        self._chunk_left = 0
        self.done = mode == "none" or (mode == "length" and length == 0)
        self.received = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the body (``n`` > 0)."""
        if self.done:
            return b""
        if self._mode == "length":
            data = self._conn.read_some(min(n, self.remaining))
            if not data:
                raise IncompleteBody(
                    f"the connection closed after {self.received} bytes of a "
                    f"{self.received + self.remaining}-byte body"
                )
            self.remaining -= len(data)
            self.done = self.remaining == 0
        elif self._mode == "chunked":
            data = self._read_chunked(n)
        else:
            data = self._conn.read_some(n)
            self.done = not data
        self.received += len(data)
        return data

    def drain(self, limit: int) -> bool:
        """Read and drop the rest of the body if it is at most ``limit`` bytes; returns
        whether the body is now complete (its connection free for another request)."""
        if self._mode == "close":
            return False
        if self._mode == "length" and self.remaining > limit:
            return False
        dropped = 0
        while not self.done:
            dropped += len(self.read(min(RECV, limit - dropped + 1)))
            if dropped > limit:
                return False
        return True

    def _read_chunked(self, n: int) -> bytes:
        conn = self._conn
        if self._chunk_left == 0:
            size = _chunk_size(conn.read_line())
            if size == 0:
                self._trailers()
                self.done = True
                return b""
            self._chunk_left = size
        data = conn.read_some(min(n, self._chunk_left))
        if not data:
            raise IncompleteBody(
                f"the connection closed inside a chunk after {self.received} bytes"
            )
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and conn.read_line() not in (b"\r\n", b"\n"):
            raise ProtocolError("a chunk not followed by CRLF")
        return data

    def _trailers(self) -> None:
        for _ in range(MAX_HEADERS + 1):
            line = self._conn.read_line()
            if not line.endswith(b"\n"):
                raise IncompleteBody("the connection closed in the chunked body's trailer")
            if line in (b"\r\n", b"\n"):
                return
        raise ProtocolError(f"more than {MAX_HEADERS} trailer lines")


def _status_line(line: bytes) -> tuple[str, int, str]:
    text = line.decode("latin-1").rstrip("\r\n")
    version, _, rest = text.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"malformed status line {text[:80]!r}")
    return version, int(code), reason.strip()


def _chunk_size(line: bytes) -> int:
    if not line.endswith(b"\n"):
        raise IncompleteBody("the connection closed before a chunk's size line")
    text = line.split(b";", 1)[0].strip()
    try:
        size = int(text, 16)
    except ValueError:
        size = -1
    if size < 0 or not text:
        raise ProtocolError(f"malformed chunk size line {line[:40]!r}")
    return size


def _framing(
    conn: Connection, method: str, status: int, version: str, headers: list[tuple[str, str]]
) -> tuple[Body, bool]:
    """The body of an answer (RFC 9112 6.3) and whether the connection ends after it."""
    tokens: set[str] = set()
    encodings = ""
    lengths: set[str] = set()
    for name, value in headers:
        key = name.lower()
        if key == "connection":
            tokens.update(token.strip().lower() for token in value.split(","))
        elif key == "transfer-encoding":
            encodings = value.lower()
        elif key == "content-length":
            lengths.update(part.strip() for part in value.split(","))
    will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
    if method == "HEAD" or status in _NO_BODY_STATUS or status < 200:
        return Body(conn, "none"), will_close
    if encodings:
        if encodings.rsplit(",", 1)[-1].strip() == "chunked":
            return Body(conn, "chunked"), will_close
        return Body(conn, "close"), True
    if lengths:
        text = next(iter(lengths)) if len(lengths) == 1 else ""
        if not text.isdigit():
            raise ProtocolError(f"invalid Content-Length {', '.join(sorted(lengths))!r}")
        return Body(conn, "length", int(text)), will_close
    return Body(conn, "close"), True


def _valid_name(name: str) -> bool:
    return name.isascii() and name.isprintable() and not _BAD_NAME_CHARS.intersection(name)


def _checked_name(name: str) -> str:
    if not name or not _valid_name(name):
        raise ValueError(f"invalid HTTP header name {name!r}")
    return name


def _checked_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"invalid value for HTTP header {name!r}: control characters")
    return value
