"""envkit.oci.digest: the built-in SHA-256 for small content and OpenSSL's for large
content give the same digests."""

from __future__ import annotations

import hashlib
import io

import pytest

from envkit.oci.digest import SMALL, new_sha256, sha256_bytes, sha256_stream


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL + 7])
def test_digests_agree_with_hashlib_on_both_sides_of_the_threshold(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) == expected
    assert sha256_stream(io.BytesIO(data)) == (expected, size)
    assert "sha256:" + new_sha256(data).hexdigest() == expected
