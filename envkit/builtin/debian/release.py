"""The suite's Release file: fetched, signature-verified with gpgv, parsed.

``InRelease`` (clearsigned) is tried first, then ``Release`` + ``Release.gpg``. Only the
text gpgv reports as signed is parsed, never the file as downloaded. The keyring is the
Debian archive keyring (package debian-archive-keyring), or ``ENVKIT_DEBIAN_KEYRING``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from envkit import settings
from envkit.builtin.debian.control import multiline, paragraphs
from envkit.errors import MirrorError, SignatureError
from envkit.records import Value

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class IndexFile(Value):
    """A file the Release lists: its path below ``dists/<suite>/``, sha256 and size."""

    path: str
    sha256: str
    size: int


class Release(Value):
    """The parts of a verified Release file the bootstrap uses."""

    suite: str
    codename: str
    architectures: tuple[str, ...]
    files: dict[str, IndexFile]
    date: str = ""

    def timestamp(self) -> int | None:
        """The ``Date:`` field in seconds since 1970 (None when absent or unreadable)."""
        from email.utils import parsedate_to_datetime  # lazy for start-up: email is slow

        try:
            return int(parsedate_to_datetime(self.date).timestamp())
        except (TypeError, ValueError):
            return None

    @classmethod
    def parse(cls, text: str) -> Release:
        """Parse a Release file's (signed) text."""
        fields = next(paragraphs(text), {})
        files: dict[str, IndexFile] = {}
        for line in multiline(fields.get("SHA256", "")):
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                files[parts[2]] = IndexFile(parts[2], parts[0].lower(), int(parts[1]))
        return cls(
            suite=fields.get("Suite", ""),
            codename=fields.get("Codename", ""),
            architectures=tuple(fields.get("Architectures", "").split()),
            files=files,
            date=fields.get("Date", ""),
        )

    def packages_index(self, component: str, arch: str) -> IndexFile:
        """The best compressed Packages index of ``component``/``arch`` it lists."""
        for ext in (".xz", ".gz", ""):
            found = self.files.get(f"{component}/binary-{arch}/Packages{ext}")
            if found is not None:
                return found
        raise MirrorError(
            f"the Release of {self.codename or self.suite} lists no Packages index "
            f"for {component}/binary-{arch}",
            hint="the mirror may not carry this architecture; choose another mirror",
        )


def keyring() -> Path:
    """The keyring Release signatures must verify with."""
    path = Path(settings.get("debian_keyring") or DEFAULT_KEYRING)
    if not path.is_file():
        raise SignatureError(
            f"the Debian archive keyring {path} is missing",
            hint="apt-get install debian-archive-keyring (or set ENVKIT_DEBIAN_KEYRING)",
        )
    return path


def verify(signed: bytes, signature: bytes | None, ring: Path, what: str) -> str:
    """The text gpgv verified: ``signed`` is clearsigned (InRelease) when ``signature``
    is None, else the data a detached ``signature`` (Release.gpg) covers."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise SignatureError(
            "gpgv is not installed, so the Release signature cannot be checked",
            hint="apt-get install gpgv",
        )
    with tempfile.TemporaryDirectory(prefix="envkit-gpgv-") as tmp:
        data = Path(tmp, "data")
        data.write_bytes(signed)
        out = Path(tmp, "out")
        argv = [gpgv, "--quiet", "--keyring", str(ring)]
        if signature is None:
            argv += ["--output", str(out), str(data)]
        else:
            sig = Path(tmp, "sig")
            sig.write_bytes(signature)
            argv += [str(sig), str(data)]
        done = subprocess.run(
            argv, capture_output=True, check=False, env={**os.environ, "LC_ALL": "C"}
        )
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            raise SignatureError(
                f"{what}: the signature does not verify with {ring}"
                + (f" ({detail[-1]})" if detail else ""),
                hint="the mirror serves a tampered or stale file, or the keyring is "
                "outdated (apt-get install debian-archive-keyring); do not use this mirror "
                "until it verifies",
            )
        text = out.read_bytes() if signature is None else signed
    return text.decode("utf-8", errors="replace")
