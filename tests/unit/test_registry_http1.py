"""envkit.registry.http1, the registry's HTTP/1.1 client: request heads, status lines,
headers and body framing, fed byte for byte by a scripted socket."""

from __future__ import annotations

import io

import pytest

from envkit.registry.http1 import (
    Connection,
    IncompleteBody,
    ProtocolError,
    RemoteClosed,
)
from envkit.registry.transport import Headers


class ScriptedSocket:
    """A socket whose ``recv`` returns the given pieces in turn (then EOF)."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)
        self.sent = bytearray()
        self.closed = False

    def recv(self, n: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces[0]
        if len(piece) > n:
            self.pieces[0] = piece[n:]
        else:
            self.pieces.pop(0)
        return piece[:n]

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def close(self) -> None:
        self.closed = True


def connection(*pieces: bytes) -> tuple[Connection, ScriptedSocket]:
    sock = ScriptedSocket(*pieces)
    return Connection(sock, "registry.test:5000"), sock


def read_all(conn: Connection, method: str = "GET", size: int = 3) -> tuple[int, bytes, bool]:
    answer = conn.request(method, "/v2/", {})
    parts = []
    while chunk := answer.body.read(size):
        parts.append(chunk)
    return answer.status, b"".join(parts), answer.will_close


def test_the_request_head_names_the_host_and_the_body_length() -> None:
    conn, sock = connection(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    conn.request("PUT", "/v2/a/manifests/1", {"Content-Type": "x/y"}, b'{"a":1}')
    head, _, body = bytes(sock.sent).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "PUT /v2/a/manifests/1 HTTP/1.1"
    assert "Host: registry.test:5000" in lines
    assert "Content-Length: 7" in lines
    assert "Content-Type: x/y" in lines
    assert body == b'{"a":1}'


def test_a_post_without_body_says_length_zero_and_a_stream_is_sent_whole() -> None:
    conn, sock = connection(
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    )
    conn.request("POST", "/v2/a/blobs/uploads/", {})
    assert b"Content-Length: 0\r\n" in sock.sent
    sock.sent.clear()
    conn.request("PUT", "/u", {}, io.BytesIO(b"z" * 3000), length=3000)
    head, _, body = bytes(sock.sent).partition(b"\r\n\r\n")
    assert b"Content-Length: 3000" in head
    assert body == b"z" * 3000


def test_header_injection_is_refused() -> None:
    conn, sock = connection()
    with pytest.raises(ValueError, match="control characters"):
        conn.request("GET", "/", {"X-A": "1\r\nX-Evil: 2"})
    with pytest.raises(ValueError, match="header name"):
        conn.request("GET", "/", {"Bad Name": "1"})
    assert not sock.sent


def test_content_length_body_split_across_reads_then_the_next_answer() -> None:
    conn, _ = connection(
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"ngth: 10\r\n\r\n0123",
        b"456789HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
    assert read_all(conn) == (200, b"0123456789", False)
    assert read_all(conn) == (200, b"ok", False)  # the same connection, kept alive


def test_chunked_body_with_extensions_and_trailers() -> None:
    conn, _ = connection(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5;name=value\r\nhello\r\n",
        b"1\r\n \r\n6\r\nwor",
        b"ld!\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    )
    assert read_all(conn) == (200, b"hello world!", False)
    assert read_all(conn) == (204, b"", False)


def test_a_body_cut_short_raises_incomplete_body() -> None:
    conn, _ = connection(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    answer = conn.request("GET", "/blob", {})
    assert answer.body.read(1000) == b"only ten b"
    with pytest.raises(IncompleteBody, match="10 bytes of a 100-byte body"):
        answer.body.read(1000)


def test_a_chunked_body_cut_short_raises_incomplete_body() -> None:
    conn, _ = connection(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc")
    answer = conn.request("GET", "/blob", {})
    with pytest.raises(IncompleteBody):
        while answer.body.read(100):
            pass


def test_header_folding_casing_and_repeats() -> None:
    conn, _ = connection(
        b"HTTP/1.1 401 Unauthorized\r\n"
        b'www-authenticate: Bearer realm="https://auth.test/token",\r\n'
        b'\t service="registry.test"\r\n'
        b"DOCKER-CONTENT-DIGEST: sha256:1\r\n"
        b"X-Twice: first\r\nX-Twice: second\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    answer = conn.request("GET", "/v2/", {})
    assert answer.status == 401 and answer.reason == "Unauthorized"
    headers = Headers(answer.headers)
    assert headers.get("WWW-Authenticate") == (
        'Bearer realm="https://auth.test/token", service="registry.test"'
    )
    assert headers.get("Docker-Content-Digest") == "sha256:1"
    assert headers.get("x-twice") == "second"


@pytest.mark.parametrize(
    ("method", "status_line"),
    [
        ("HEAD", b"HTTP/1.1 200 OK"),
        ("GET", b"HTTP/1.1 204 No Content"),
        ("GET", b"HTTP/1.1 304 Not Modified"),
    ],
)
def test_answers_without_a_body_despite_a_length(method: str, status_line: bytes) -> None:
    conn, _ = connection(
        status_line + b"\r\nContent-Length: 1234\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    )
    answer = conn.request(method, "/v2/a/manifests/1", {})
    assert answer.body.done
    assert answer.body.read(100) == b""
    assert read_all(conn) == (200, b"abc", False)


def test_interim_answers_are_skipped() -> None:
    conn, _ = connection(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    assert read_all(conn, "PUT") == (201, b"", False)


def test_close_delimited_bodies_and_http_1_0_end_the_connection() -> None:
    conn, _ = connection(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    assert read_all(conn) == (200, b"until the end", True)
    conn, _ = connection(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert read_all(conn) == (200, b"ok", True)
    conn, _ = connection(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert read_all(conn) == (200, b"ok", True)


def test_an_idle_connection_closed_by_the_server_is_remote_closed() -> None:
    conn, _ = connection()
    with pytest.raises(RemoteClosed):
        conn.request("GET", "/", {})


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1",
    ],
)
def test_malformed_answers_are_protocol_errors(answer: bytes) -> None:
    conn, _ = connection(answer)
    with pytest.raises(ProtocolError):
        conn.request("GET", "/", {})


def test_drain_keeps_a_small_rest_and_refuses_a_large_one() -> None:
    conn, _ = connection(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall",
        b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b"b" * 500,
    )
    assert conn.request("GET", "/", {}).body.drain(100)
    assert not conn.request("GET", "/", {}).body.drain(100)


def test_close_is_idempotent() -> None:
    conn, sock = connection()
    conn.close()
    conn.close()
    assert sock.closed and conn.sock is None
    with pytest.raises(OSError, match="closed"):
        conn.request("GET", "/", {})
