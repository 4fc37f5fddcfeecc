"""The pool's own clients: PostgreSQL's protocol 3.0 (startup, MD5 and SCRAM-SHA-256
authentication, simple queries, errors) against a scripted server on loopback, the
SCRAM examples of the RFCs, and RESP for Redis."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from envkit.errors import EnvkitError, PgError
from envkit.testing.pgwire import PgConnection, Scram, md5_password
from envkit.testing.resp import RespConnection, encode

# RFC 5802 section 5 (SCRAM-SHA-1) and RFC 7677 section 3 (SCRAM-SHA-256): user "user",
# password "pencil"; client nonce, server first message, client final message, server
# final message, as printed in the RFCs.
SCRAM_EXAMPLES = [
    (
        "RFC 5802",
        hashlib.sha1,
        "fyko+d2lbbFgONRv9qkxdawL",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    (
        "RFC 7677",
        hashlib.sha256,
        "rOprNGfwEbeRWgbNEkqO",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
]


@pytest.mark.parametrize(
    ("source", "digest", "nonce", "server_first", "client_final", "server_final"),
    SCRAM_EXAMPLES,
    ids=[e[0] for e in SCRAM_EXAMPLES],
)
def test_scram_examples_of_the_rfcs(
    source: str,
    digest: Callable[..., hashlib._Hash],
    nonce: str,
    server_first: str,
    client_final: str,
    server_final: str,
) -> None:
    scram = Scram("pencil", digest, user="user", nonce=nonce)
    assert scram.client_first() == f"n,,n=user,r={nonce}"
    assert scram.client_final(server_first) == client_final
    scram.verify_server(server_final)  # no error: the server knew the password


def test_scram_refuses_a_server_that_does_not_know_the_password() -> None:
    _, digest, nonce, first, _, _ = SCRAM_EXAMPLES[1]
    scram = Scram("pencil", digest, user="user", nonce=nonce)
    scram.client_final(first)
    with pytest.raises(PgError, match="signature does not match"):
        scram.verify_server("v=" + "A" * 43 + "=")
    with pytest.raises(PgError, match="unexpected server message"):
        Scram("x", hashlib.sha256, nonce="abc").client_final("r=other,s=c2FsdA==,i=4096")


def test_md5_password_is_md5_of_md5_and_salt() -> None:
    inner = hashlib.md5(b"secretalice").hexdigest()
    expected = "md5" + hashlib.md5(inner.encode() + b"\x01\x02\x03\x04").hexdigest()
    assert md5_password("alice", "secret", b"\x01\x02\x03\x04").decode() == expected


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _read_message(conn: socket.socket, startup: bool = False) -> tuple[bytes, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            assert chunk, "client went away"
            data += chunk
        return data

    if startup:
        (length,) = struct.unpack("!i", exactly(4))
        return b"", exactly(length - 4)
    kind = exactly(1)
    (length,) = struct.unpack("!i", exactly(4))
    return kind, exactly(length - 4)


#: The ``server`` fixture: starts a scripted one-connection server, returns its port.
Serve = Callable[[Callable[[socket.socket], None]], int]


@pytest.fixture
def server() -> Iterator[Serve]:
    """A one-connection scripted server on loopback; the script gets the socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    threads: list[threading.Thread] = []
    failures: list[BaseException] = []

    def start(script: Callable[[socket.socket], None]) -> int:
        def serve() -> None:
            conn, _ = listener.accept()
            try:
                script(conn)
            except BaseException as exc:  # reported by the test
                failures.append(exc)
            finally:
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return int(listener.getsockname()[1])

    yield start
    for thread in threads:
        thread.join(5)
    listener.close()
    assert not failures, failures


def _ready() -> bytes:
    return _message(b"Z", b"I")


def test_startup_md5_query_rows_nulls_and_errors(server: Serve) -> None:
    seen: dict[str, object] = {}

    def script(conn: socket.socket) -> None:
        _, startup = _read_message(conn, startup=True)
        (version,) = struct.unpack_from("!i", startup)
        seen["version"] = version
        seen["params"] = startup[4:].split(b"\0")[:4]
        conn.sendall(_message(b"R", struct.pack("!i", 5) + b"salt"))
        kind, password = _read_message(conn)
        seen["password"] = (kind, password)
        conn.sendall(_message(b"R", struct.pack("!i", 0)))
        conn.sendall(_message(b"S", b"server_version\x0015.18\x00") + _message(b"K", b"\0" * 8))
        conn.sendall(_ready())
        kind, query = _read_message(conn)
        seen["query"] = (kind, query)
        row = struct.pack("!h", 2) + struct.pack("!i", 1) + b"1" + struct.pack("!i", -1)
        conn.sendall(
            _message(b"T", b"\0\0") + _message(b"D", row) + _message(b"C", b"SELECT 1\0") + _ready()
        )
        _read_message(conn)
        error = b'SERROR\0C42P01\0Mrelation "nope" does not exist\0\0'
        conn.sendall(_message(b"E", error) + _ready())
        kind, _ = _read_message(conn)
        seen["goodbye"] = kind

    port = server(script)
    conn = PgConnection("127.0.0.1", port, "alice", "secret", "shop")
    assert conn.execute("SELECT 1, NULL") == [("1", None)]
    with pytest.raises(PgError, match='ERROR: relation "nope" does not exist') as info:
        conn.execute("SELECT * FROM nope")
    assert info.value.sqlstate == "42P01"
    conn.close()
    deadline = time.monotonic() + 5  # the server thread reads the Terminate after close()
    while "goodbye" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen["version"] == 196608
    assert seen["params"] == [b"user", b"alice", b"database", b"shop"]
    assert seen["password"] == (b"p", md5_password("alice", "secret", b"salt") + b"\0")
    assert seen["query"] == (b"Q", b"SELECT 1, NULL\0")
    assert seen["goodbye"] == b"X"


def test_a_refused_login_raises_the_servers_message(server: Serve) -> None:
    def script(conn: socket.socket) -> None:
        _read_message(conn, startup=True)
        fatal = b'SFATAL\0C28P01\0Mpassword authentication failed for user "alice"\0\0'
        conn.sendall(_message(b"E", fatal))

    port = server(script)
    with pytest.raises(PgError, match="FATAL: password authentication failed"):
        PgConnection("127.0.0.1", port, "alice", "wrong", "shop")


def test_a_server_without_scram_sha_256_is_named(server: Serve) -> None:
    def script(conn: socket.socket) -> None:
        _read_message(conn, startup=True)
        conn.sendall(_message(b"R", struct.pack("!i", 10) + b"SCRAM-SHA-256-PLUS\0\0"))
        with contextlib.suppress(OSError):
            conn.recv(1)

    port = server(script)
    with pytest.raises(PgError, match=r"no SASL mechanism envkit speaks.*SCRAM-SHA-256-PLUS"):
        PgConnection("127.0.0.1", port, "alice", "secret", "shop")


def test_resp_commands_and_replies(server: Serve) -> None:
    received: list[bytes] = []

    def script(conn: socket.socket) -> None:
        data = b""
        expected = encode(["CONFIG", "GET", "databases"]) + encode(["FLUSHDB"])
        while len(data) < len(expected):
            data += conn.recv(4096)
        received.append(data)
        conn.sendall(b"*2\r\n$9\r\ndatabases\r\n$2\r\n16\r\n")
        conn.sendall(b"-ERR unknown command\r\n")

    port = server(script)
    client = RespConnection("127.0.0.1", port)
    client._sock.sendall(encode(["CONFIG", "GET", "databases"]) + encode(["FLUSHDB"]))
    assert client._reply() == ["databases", "16"]
    with pytest.raises(EnvkitError, match="unknown command"):
        client._reply()
    client.close()
    assert received[0].startswith(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\ndatabases\r\n")


def test_interrupt_ends_a_query_waiting_on_the_server(server: Serve) -> None:
    """What the pool does at close when the server is about to go anyway."""
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        _read_message(conn, startup=True)
        conn.sendall(_message(b"R", struct.pack("!i", 0)) + _ready())
        _read_message(conn)  # the query, never answered
        done.wait(10)

    port = server(script)
    conn = PgConnection("127.0.0.1", port, "alice", "", "shop")
    failures: list[BaseException] = []

    def query() -> None:
        try:
            conn.execute("CREATE DATABASE slow")
        except PgError as exc:
            failures.append(exc)

    waiting = threading.Thread(target=query)
    waiting.start()
    time.sleep(0.05)
    conn.interrupt()
    waiting.join(5)
    done.set()
    conn.close()
    assert not waiting.is_alive()
    assert failures and "closed the connection" in str(failures[0])
