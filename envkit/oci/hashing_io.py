"""Byte streams that hash and count what passes through them (one-pass digests)."""

from __future__ import annotations

import io

from envkit.oci.digest import StreamSha256, new_sha256

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO


class HashingWriter(io.RawIOBase):
    """Forward writes to ``stream`` while computing their sha256 and size.

    Closing the writer does not close ``stream``.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        # A small layer (a copy's, a run step's) is hashed without importing hashlib.
        self._hash = StreamSha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._stream.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of everything written so far."""
        return "sha256:" + self._hash.hexdigest()


class HashingReader(io.RawIOBase):
    """Read from ``stream`` while computing the sha256 and size of what was read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = new_sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._hash.update(data)
        self.size += n
        return n

    def drain(self) -> None:
        """Read (and hash) everything left in the stream."""
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of everything read so far."""
        return "sha256:" + self._hash.hexdigest()
