"""Compression of layer and archive streams: detection by magic bytes, open for read/write."""

from __future__ import annotations

import gzip
import io

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
XZ_MAGIC = b"\xfd7zXZ\x00"
BZIP2_MAGIC = b"BZh"


def detect(head: bytes) -> str:
    """``"gzip"``, ``"zstd"``, ``"xz"``, ``"bzip2"`` or ``""`` (uncompressed) from leading bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    return ""


def open_decompressed(stream: BinaryIO, kind: str | None = None) -> BinaryIO:
    """Wrap ``stream`` so reads return decompressed bytes.

    With ``kind=None`` the compression is detected from the first bytes; ``stream``
    must then be seekable or already buffered (a ``BufferedReader`` with ``peek``).
    """
    if kind is None:
        peek = getattr(stream, "peek", None)
        if peek is not None:
            head = peek(8)[:8]
        else:
            pos = stream.tell()
            head = stream.read(8)
            stream.seek(pos)
        kind = detect(head)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard  # lazy for start-up: each codec only when used

        reader = zstandard.ZstdDecompressor().stream_reader(stream, closefd=False)
        return io.BufferedReader(reader)
    if kind == "xz":
        import lzma  # lazy for start-up: each codec only when used

        return lzma.LZMAFile(stream, "rb")  # type: ignore[return-value]
    if kind == "bzip2":
        import bz2  # lazy for start-up: each codec only when used

        return bz2.BZ2File(stream, "rb")  # type: ignore[return-value]
    return stream


def open_compressor(stream: BinaryIO, kind: str, level: int | None = None) -> BinaryIO:
    """Wrap ``stream`` so writes are compressed with ``kind``; close the wrapper to flush.

    gzip output is reproducible: no file name and a zero mtime in the header.
    """
    if kind == "gzip":
        return gzip.GzipFile(  # type: ignore[return-value]
            filename="", mode="wb", fileobj=stream, mtime=0, compresslevel=level or 6
        )
    if kind == "zstd":
        import zstandard  # lazy for start-up: each codec only when used

        cctx = zstandard.ZstdCompressor(level=level or 3)
        return cctx.stream_writer(stream, closefd=False)
    if kind == "":
        return _NoCloseWriter(stream)  # type: ignore[return-value]
    raise ValueError(f"unsupported compression {kind!r}")


class _NoCloseWriter(io.RawIOBase):
    """A pass-through writer whose close() leaves the underlying stream open."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._stream.write(data)
        return len(data)
