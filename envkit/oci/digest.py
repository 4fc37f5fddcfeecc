"""Content digests (``sha256:<hex>``) and hashing helpers.

:mod:`hashlib` is imported only to hash large content: its import loads OpenSSL (~3 ms),
more than a warm pull spends hashing. Small documents (manifests, configs, index
entries) are hashed with the interpreter's built-in SHA-256, which needs no import
time; OpenSSL's is several times faster per byte (CPU SHA extensions), so streams and
large blobs use it.
"""

from __future__ import annotations

import re

from envkit.errors import DigestMismatchError, StoreError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from hashlib import _Hash
    from hashlib import sha256 as _builtin_sha256
    from typing import BinaryIO
else:
    try:
        from _sha256 import sha256 as _builtin_sha256
    except ImportError:  # an interpreter built without its own hash modules
        from hashlib import sha256 as _builtin_sha256

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
CHUNK = 1 << 20
#: Content up to this size is hashed with the built-in SHA-256 (see the module's doc).
SMALL = 1 << 16


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
    if len(data) <= SMALL:
        return "sha256:" + _builtin_sha256(data).hexdigest()
    return "sha256:" + new_sha256(data).hexdigest()


def new_sha256(data: bytes = b"") -> _Hash:
    """A SHA-256 hasher (OpenSSL's, for streams and large content)."""
    import hashlib  # lazy for start-up: OpenSSL's hashlib only for large content

    return hashlib.sha256(data)


class StreamSha256:
    """A SHA-256 of content fed in pieces that may turn out small: the first
    :data:`SMALL` bytes are kept, and only content that grows past them goes to
    OpenSSL's hasher (:func:`new_sha256`). A small layer or file is hashed with the
    built-in SHA-256, as :func:`sha256_bytes` does, and imports no hashlib; the digest
    is the same either way."""

    __slots__ = ("_hash", "_head")

    def __init__(self) -> None:
        self._hash: _Hash | None = None
        self._head = bytearray()

    def update(self, data: bytes | memoryview) -> None:
        """Add ``data`` to the hashed content."""
        if self._hash is not None:
            self._hash.update(data)
            return
        self._head += data
        if len(self._head) > SMALL:
            self._hash = new_sha256(bytes(self._head))
            self._head = bytearray()

    def hexdigest(self) -> str:
        """The hex digest of everything added so far."""
        if self._hash is not None:
            return self._hash.hexdigest()
        return _builtin_sha256(bytes(self._head)).hexdigest()


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """The digest and size of everything left in ``stream``."""
    h = new_sha256()
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
