"""The verified indexes of a suite: its signed Release, then its Packages index."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

from envkit.builtin.debian.fetch import Mirror
from envkit.builtin.debian.packages import PackageIndex
from envkit.builtin.debian.release import IndexFile, Release, keyring, verify
from envkit.errors import MirrorError

COMPONENT = "main"


def fetch_release(mirror: Mirror, suite: str, ring: Path | None = None) -> Release:
    """``dists/<suite>/InRelease`` (else ``Release`` + ``Release.gpg``), verified."""
    ring = ring or keyring()
    base = f"dists/{suite}"
    inrelease = mirror.get(f"{base}/InRelease")
    if inrelease is not None:
        return Release.parse(verify(inrelease, None, ring, f"{mirror.url}/{base}/InRelease"))
    release = mirror.get(f"{base}/Release")
    signature = mirror.get(f"{base}/Release.gpg")
    if release is None or signature is None:
        raise MirrorError(
            f"{mirror.url}: no suite {suite!r} (neither {base}/InRelease nor a signed "
            f"{base}/Release)",
            hint='check the suite name (e.g. "bookworm") and that the URL is a Debian '
            "mirror (it has dists/ and pool/)",
        )
    return Release.parse(verify(release, signature, ring, f"{mirror.url}/{base}/Release"))


def packages_file(release: Release, arch: str) -> IndexFile:
    """The Packages index of the main component for ``arch``."""
    return release.packages_index(COMPONENT, arch)


def load_packages(mirror: Mirror, suite: str, entry: IndexFile, arch: str) -> PackageIndex:
    """The Packages index ``entry`` names, fetched (or cached), hash-checked, parsed."""
    path = mirror.fetch(f"dists/{suite}/{entry.path}", entry.sha256, entry.size)
    raw = path.read_bytes()
    if entry.path.endswith(".xz"):
        raw = lzma.decompress(raw)
    elif entry.path.endswith(".gz"):
        raw = gzip.decompress(raw)
    return PackageIndex.parse(raw.decode("utf-8", "replace"), arch)
