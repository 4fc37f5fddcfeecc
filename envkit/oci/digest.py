"""Content digests (``sha256:<hex>``) and hashing helpers."""

from __future__ import annotations

import hashlib
import re

from envkit.errors import DigestMismatchError, StoreError

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from typing import BinaryIO

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
CHUNK = 1 << 20


def is_digest(text: str) -> bool:
    """Whether ``text`` is a well-formed sha256 digest."""
    return bool(_DIGEST_RE.match(text))


def check_digest(text: str) -> str:
    """Return ``text`` if it is a sha256 digest; raise :class:`StoreError` otherwise."""
    if not is_digest(text):
        raise StoreError(
            f"not a sha256 digest: {text!r}",
            hint="digests look like sha256:<64 lowercase hex characters>",
        )
    return text


def sha256_bytes(data: bytes) -> str:
    """The digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """The digest and size of everything left in ``stream``."""
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def hex_of(digest: str) -> str:
    """The hex part of a digest (``sha256:abc`` -> ``abc``)."""
    return check_digest(digest).split(":", 1)[1]


def verify(data: bytes, digest: str, what: str = "content") -> None:
    """Raise :class:`DigestMismatchError` unless ``data`` hashes to ``digest``."""
    actual = sha256_bytes(data)
    if actual != digest:
        raise DigestMismatchError(f"{what} has digest {actual}, expected {digest}")
