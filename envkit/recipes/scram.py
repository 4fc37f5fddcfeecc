"""SCRAM keys (RFC 5802 section 3) and PostgreSQL's stored form of them.

A server keeps only ``StoredKey`` and ``ServerKey`` and announces the salt and the
iteration count; the client runs PBKDF2 with that count at every connection. libpq
spends about 5 ms of CPU on the 4096 iterations PostgreSQL uses by default, more than
the rest of a connection to a local server. A test server has no password worth
stretching, so :mod:`envkit.recipes.postgres` stores a secret of few iterations (as
PostgreSQL 16's ``scram_iterations`` setting would): every client (libpq, asyncpg,
JDBC) follows the count the server announces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: PBKDF2 rounds of the secrets envkit's test servers store (PostgreSQL's default: 4096).
TEST_ITERATIONS = 16


def keys(password: bytes, salt: bytes, iterations: int, name: str = "sha256") -> tuple[bytes, ...]:
    """``(ClientKey, StoredKey, ServerKey)`` of ``password`` for the hash ``name``."""
    salted = hashlib.pbkdf2_hmac(name, password, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", name)
    stored_key = hashlib.new(name, client_key).digest()
    return client_key, stored_key, hmac.digest(salted, b"Server Key", name)


def postgres_secret(password: str, salt: bytes, iterations: int = TEST_ITERATIONS) -> str:
    """``SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY`` (base64), the form
    ``pg_authid`` keeps; ``CREATE ROLE``/``ALTER ROLE ... PASSWORD`` and initdb's
    ``--pwfile`` store a string of this form as it is.

    ``password`` must be printable ASCII, which SASLprep leaves unchanged (PostgreSQL
    prepares other passwords before hashing them).
    """
    if not (password.isascii() and password.isprintable()):
        raise ValueError("only a printable ASCII password has a secret computed here")
    _, stored_key, server_key = keys(password.encode(), salt, iterations)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
