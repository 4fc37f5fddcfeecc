"""A small PostgreSQL client: the frontend/backend protocol 3.0, simple queries only.

The database pool (:mod:`envkit.testing.databases`) clones, hands out and drops test
databases over one connection it keeps open, instead of exec'ing ``psql`` in the
container for every statement. It speaks the protocol itself rather than depend on a
client library at run time: the pytest plugin is active wherever envkit is installed,
and a suite may use psycopg, psycopg2, asyncpg or none of them. What the pool needs is
small: a startup message, password authentication (trust, cleartext, MD5 and
SCRAM-SHA-256, RFC 5802/7677, without channel binding), simple queries and their rows as
text, and the server's error messages. See PostgreSQL's "Frontend/Backend Protocol"
chapter (Message Flow, Message Formats, SASL Authentication).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import socket
import struct
from collections.abc import Callable

from envkit.errors import PgError
from envkit.recipes import scram

PROTOCOL_3_0 = 196608

_AUTH_OK = 0
_AUTH_CLEARTEXT = 3
_AUTH_MD5 = 5
_AUTH_SASL = 10
_AUTH_SASL_CONTINUE = 11
_AUTH_SASL_FINAL = 12

Row = tuple[str | None, ...]


class PgConnection:
    """One connection to a PostgreSQL server; :meth:`execute` runs SQL and returns the
    rows of its last result as text (``None`` for NULL). Not thread-safe: one thread
    uses a connection at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        database: str,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.where = f"{user}@{host}:{port}/{database}"
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""
        try:
            self._startup(user, password, database)
        except BaseException:
            self._sock.close()
            raise

    def execute(self, sql: str) -> list[Row]:
        """Run ``sql`` (one or more statements, the simple query protocol); the rows of
        the last statement that returned any. A failing statement raises
        :class:`PgError` with the server's message, after the server is ready again."""
        self._send(b"Q", sql.encode() + b"\0")
        rows: list[Row] = []
        error: PgError | None = None
        while True:
            kind, body = self._receive()
            if kind == b"T":
                rows = []
            elif kind == b"D":
                rows.append(_data_row(body))
            elif kind == b"E":
                error = _error(body, self.where)
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows
            # C (command complete), I (empty query), N (notice), S (parameter status)

    def interrupt(self) -> None:
        """Shut the socket down: a call waiting on the server (in another thread)
        returns at once with an error."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Say goodbye (``Terminate``) and close the socket."""
        with contextlib.suppress(OSError):
            self._send(b"X", b"")
        self._sock.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- startup ---------------------------------------------------------------------

    def _startup(self, user: str, password: str, database: str) -> None:
        params = b"".join(
            k.encode() + b"\0" + v.encode() + b"\0"
            for k, v in (
                ("user", user),
                ("database", database),
                ("application_name", "envkit"),
                ("client_encoding", "UTF8"),
            )
        )
        body = struct.pack("!i", PROTOCOL_3_0) + params + b"\0"
        self._sock.sendall(struct.pack("!i", len(body) + 4) + body)
        scram: Scram | None = None
        while True:
            kind, data = self._receive()
            if kind == b"E":
                raise _error(data, self.where)
            if kind == b"Z":
                return
            if kind != b"R":
                continue  # S (parameter status), K (backend key), N (notice)
            (code,) = struct.unpack_from("!i", data)
            if code == _AUTH_OK:
                continue
            if code == _AUTH_CLEARTEXT:
                self._send(b"p", password.encode() + b"\0")
            elif code == _AUTH_MD5:
                self._send(b"p", md5_password(user, password, data[4:8]) + b"\0")
            elif code == _AUTH_SASL:
                mechanisms = data[4:].split(b"\0")
                if b"SCRAM-SHA-256" not in mechanisms:
                    raise PgError(
                        f"{self.where}: the server offers no SASL mechanism envkit speaks "
                        f"({b', '.join(m for m in mechanisms if m).decode()})",
                    )
                scram = Scram(password, hashlib.sha256)
                first = scram.client_first().encode()
                self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
            elif code == _AUTH_SASL_CONTINUE and scram is not None:
                self._send(b"p", scram.client_final(data[4:].decode()).encode())
            elif code == _AUTH_SASL_FINAL and scram is not None:
                scram.verify_server(data[4:].decode())
            else:
                raise PgError(f"{self.where}: unsupported authentication request {code}")

    # -- framing ---------------------------------------------------------------------

    def _send(self, kind: bytes, body: bytes) -> None:
        self._sock.sendall(kind + struct.pack("!i", len(body) + 4) + body)

    def _receive(self) -> tuple[bytes, bytes]:
        header = self._read(5)
        kind = header[:1]
        (length,) = struct.unpack("!i", header[1:])
        return kind, self._read(length - 4)

    def _read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self._sock.recv(max(65536, count - len(self._buffer)))
            if not chunk:
                raise PgError(f"{self.where}: the server closed the connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


def _data_row(body: bytes) -> Row:
    (count,) = struct.unpack_from("!h", body)
    offset = 2
    values: list[str | None] = []
    for _ in range(count):
        (length,) = struct.unpack_from("!i", body, offset)
        offset += 4
        if length < 0:
            values.append(None)
            continue
        values.append(body[offset : offset + length].decode(errors="replace"))
        offset += length
    return tuple(values)


def _error(body: bytes, where: str) -> PgError:
    """An ErrorResponse as a :class:`PgError`: ``SEVERITY: message`` and its hint."""
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    severity = fields.get("S", "ERROR")
    return PgError(
        f"{where}: {severity}: {fields.get('M', 'unknown error')}",
        sqlstate=fields.get("C", ""),
        hint=fields.get("H"),
    )


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """The answer to ``AuthenticationMD5Password``: ``md5`` + md5(md5(password + user)
    + salt), in hex."""
    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
    return b"md5" + hashlib.md5(inner + salt).hexdigest().encode()


class Scram:
    """The client side of SCRAM (RFC 5802) without channel binding (gs2 header
    ``n,,``). PostgreSQL ignores the SCRAM user name (the startup message names the
    user), so it is empty unless given."""

    def __init__(
        self,
        password: str,
        digest: Callable[..., hashlib._Hash],
        *,
        user: str = "",
        nonce: str | None = None,
    ) -> None:
        self.password = password
        self.digest = digest
        self.user = user
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self._first_bare = f"n={user},r={self.nonce}"
        self._server_signature = b""

    def client_first(self) -> str:
        """``n,,n=USER,r=NONCE``."""
        return "n,," + self._first_bare

    def client_final(self, server_first: str) -> str:
        """The proof for the server's first message (``r=...,s=...,i=...``)."""
        attrs = dict(item.split("=", 1) for item in server_first.split(",") if "=" in item)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or not salt or not iterations.isdigit():
            raise PgError(f"SCRAM: unexpected server message {server_first!r}")
        name = self.digest().name
        client_key, stored_key, server_key = scram.keys(
            self.password.encode(), base64.b64decode(salt), int(iterations), name
        )
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, name)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = hmac.digest(server_key, auth_message, name)
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify_server(self, server_final: str) -> None:
        """Check the server's signature (``v=...``): it knew the password too."""
        if server_final.startswith("e="):
            raise PgError(f"SCRAM: the server refused the proof: {server_final[2:]}")
        value = server_final.split(",", 1)[0].removeprefix("v=")
        if not hmac.compare_digest(base64.b64decode(value), self._server_signature):
            raise PgError("SCRAM: the server's signature does not match (not the server?)")
