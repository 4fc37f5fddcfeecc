"""``StreamSha256``: the built-in SHA-256 for small streamed content, OpenSSL's past it.

The digest must be hashlib's whatever the size and however the content is cut into
pieces; a small stream must not import hashlib (which loads OpenSSL, ~2.5 ms).
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys

import pytest

from envkit.oci.digest import SMALL, StreamSha256


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL + 17])
@pytest.mark.parametrize("piece", [1 << 20, 4096, 1000])
def test_the_digest_is_hashlib_s(size: int, piece: int) -> None:
    data = random.Random(size).randbytes(size)
    stream = StreamSha256()
    for start in range(0, size, piece):
        stream.update(memoryview(data)[start : start + piece])
    assert stream.hexdigest() == hashlib.sha256(data).hexdigest()
    stream.update(b"more")  # still usable after a digest was read
    assert stream.hexdigest() == hashlib.sha256(data + b"more").hexdigest()


def test_a_small_stream_does_not_import_hashlib() -> None:
    code = (
        "import sys\n"
        "from envkit.oci.hashing_io import HashingWriter\n"
        "import io\n"
        "w = HashingWriter(io.BytesIO())\n"
        "w.write(b'x' * 1000)\n"
        "print(w.digest, 'hashlib' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["sha256:" + hashlib.sha256(b"x" * 1000).hexdigest(), "False"]
