"""SCRAM keys and PostgreSQL's stored secret, checked the way the server checks a client:
against the SCRAM-SHA-256 exchange printed in RFC 7677 section 3 (user "user", password
"pencil")."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from envkit.recipes import scram
from envkit.recipes.postgres import _stored_password

# RFC 7677 section 3, as printed.
CLIENT_FIRST_BARE = "n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
WITHOUT_PROOF = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def _server_accepts(secret: str, proof: str) -> tuple[bool, str]:
    """What PostgreSQL does with a stored secret (``verify_client_proof``,
    ``verify_final_nonce``): recover ClientKey from the proof, hash it, compare with
    StoredKey; and sign the exchange with ServerKey."""
    scheme, rest = secret.split("$", 1)
    assert scheme == "SCRAM-SHA-256"
    _rounds_and_salt, keys = rest.split("$")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    auth = f"{CLIENT_FIRST_BARE},{SERVER_FIRST},{WITHOUT_PROOF}".encode()
    signature = hmac.digest(stored_key, auth, "sha256")
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
    ok = hashlib.sha256(client_key).digest() == stored_key
    return ok, base64.b64encode(hmac.digest(server_key, auth, "sha256")).decode()


def test_the_secret_accepts_the_rfc_clients_proof_and_signs_as_the_rfc_server() -> None:
    secret = scram.postgres_secret("pencil", SALT, 4096)
    assert secret.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert _server_accepts(secret, PROOF) == (True, SERVER_SIGNATURE)


def test_the_secret_refuses_a_wrong_password() -> None:
    ok, signature = _server_accepts(scram.postgres_secret("pencil!", SALT, 4096), PROOF)
    assert not ok
    assert signature != SERVER_SIGNATURE


def test_the_test_secret_has_few_rounds_and_depends_only_on_the_credentials() -> None:
    secret = _stored_password("postgres", "postgres")
    assert secret.startswith(f"SCRAM-SHA-256${scram.TEST_ITERATIONS}:")
    assert secret == _stored_password("postgres", "postgres")  # the build step's cache key
    assert secret != _stored_password("postgres", "other")
    assert _stored_password("alice", "postgres").split("$")[1] != secret.split("$")[1]


@pytest.mark.parametrize("password", ["pässword", "tab\there", ""])
def test_an_empty_password_or_one_sasl_prep_may_change_is_given_to_initdb_as_it_is(
    password: str,
) -> None:
    assert _stored_password("postgres", password) == password
