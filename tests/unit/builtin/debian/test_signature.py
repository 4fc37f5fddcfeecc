"""Release signatures (gpgv with a throwaway key) and hash checks of downloads."""

from __future__ import annotations

import hashlib
import lzma
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.builtin.debian.fetch import Mirror
from envkit.builtin.debian.index import fetch_release, load_packages, packages_file
from envkit.builtin.debian.release import verify
from envkit.errors import HashMismatchError, MirrorError, SignatureError
from tests.unit.builtin.debian.fixtures import Signer, need, release_text, serve, stanza


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    need("gpgv")
    key = Signer(tmp_path_factory.mktemp("signer"))
    yield key
    key.close()


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    key = Signer(tmp_path_factory.mktemp("stranger"), "someone else")
    yield key
    key.close()


def make_mirror(root: Path, signer: Signer, packages: bytes, *, inrelease: bool = True) -> None:
    dists = root / "dists" / "testing"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    xz = lzma.compress(packages)
    (dists / "main/binary-amd64/Packages.xz").write_bytes(xz)
    release = release_text({"main/binary-amd64/Packages.xz": xz})
    if inrelease:
        (dists / "InRelease").write_bytes(signer.clearsign(release))
    else:
        (dists / "Release").write_bytes(release)
        (dists / "Release.gpg").write_bytes(signer.detach(release))


def test_clearsigned_text_verifies_and_only_signed_text_is_returned(signer: Signer) -> None:
    signed = signer.clearsign(b"Suite: testing\n")
    assert verify(signed, None, signer.keyring, "InRelease").strip() == "Suite: testing"


def test_tampered_or_foreign_signature_is_refused(signer: Signer, stranger: Signer) -> None:
    signed = signer.clearsign(b"Suite: testing\nSHA256:\n aa 1 x\n")
    with pytest.raises(SignatureError, match="does not verify"):
        verify(signed.replace(b" aa 1 x", b" bb 1 x"), None, signer.keyring, "InRelease")
    with pytest.raises(SignatureError):
        verify(stranger.clearsign(b"Suite: testing\n"), None, signer.keyring, "InRelease")
    with pytest.raises(SignatureError):
        verify(b"Suite: testing\n", None, signer.keyring, "InRelease")  # not signed at all


@pytest.mark.parametrize("inrelease", [True, False])
def test_mirror_release_then_packages_index(
    tmp_path: Path, signer: Signer, inrelease: bool
) -> None:
    root = tmp_path / "mirror"
    make_mirror(root, signer, stanza("hello").encode(), inrelease=inrelease)
    with serve(root) as url:
        mirror = Mirror(url, tmp_path / "cache")
        release = fetch_release(mirror, "testing", signer.keyring)
        entry = packages_file(release, "amd64")
        index = load_packages(mirror, "testing", entry, "amd64")
    assert list(index.by_name) == ["hello"]
    assert mirror.cached_path(entry.sha256).is_file()  # a rebuild reads the cache


def test_release_signed_by_another_key_is_refused(
    tmp_path: Path, signer: Signer, stranger: Signer
) -> None:
    make_mirror(tmp_path / "mirror", stranger, b"")
    with serve(tmp_path / "mirror") as url, pytest.raises(SignatureError):
        fetch_release(Mirror(url, tmp_path / "cache"), "testing", signer.keyring)


def test_packages_index_not_matching_the_release_is_refused(tmp_path: Path, signer: Signer) -> None:
    root = tmp_path / "mirror"
    make_mirror(root, signer, stanza("hello").encode())
    (root / "dists/testing/main/binary-amd64/Packages.xz").write_bytes(lzma.compress(b"evil"))
    with serve(root) as url:
        mirror = Mirror(url, tmp_path / "cache")
        entry = packages_file(fetch_release(mirror, "testing", signer.keyring), "amd64")
        with pytest.raises(HashMismatchError, match=r"Packages\.xz"):
            load_packages(mirror, "testing", entry, "amd64")
    assert not mirror.cached_path(entry.sha256).exists()
    assert not list((tmp_path / "cache" / "sha256").glob(".partial-*"))


def test_deb_fetch_checks_hash_and_caches(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    (root / "pool").mkdir(parents=True)
    (root / "pool/a.deb").write_bytes(b"deb bytes")
    good = hashlib.sha256(b"deb bytes").hexdigest()
    with serve(root) as url:
        mirror = Mirror(url, tmp_path / "cache")
        path = mirror.fetch("pool/a.deb", good, 9)
        (root / "pool/a.deb").unlink()  # cached: never fetched again
        assert mirror.fetch_all([("pool/a.deb", good, 9)]) == [path]
        with pytest.raises(HashMismatchError, match=r"a\.deb"):
            (root / "pool/a.deb").write_bytes(b"other bytes")
            mirror.fetch("pool/a.deb", "0" * 64, 11)
        with pytest.raises(MirrorError, match="HTTP 404"):
            mirror.fetch("pool/missing.deb", "1" * 64, 1)
    assert path.read_bytes() == b"deb bytes"


def test_unreachable_mirror_and_missing_suite(tmp_path: Path, signer: Signer) -> None:
    with pytest.raises(MirrorError, match="cannot reach"):
        Mirror("http://127.0.0.1:9", tmp_path).get("dists/x/InRelease")
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as url, pytest.raises(MirrorError, match="no suite 'nosuch'"):
        fetch_release(Mirror(url, tmp_path / "cache"), "nosuch", signer.keyring)
