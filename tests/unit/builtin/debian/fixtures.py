"""Builders for the Debian unit tests: Packages text, signed Release files, .debs, a
loopback HTTP mirror."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest


def stanza(name: str, version: str = "1.0", **fields: str) -> str:
    """One Packages paragraph; ``fields`` use underscores for dashes (Pre_Depends)."""
    body = {
        "Package": name,
        "Version": version,
        "Architecture": "amd64",
        "Filename": f"pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
        "Size": "10",
        "SHA256": hashlib.sha256(name.encode()).hexdigest(),
        "Priority": "optional",
    }
    body.update({k.replace("_", "-"): v for k, v in fields.items()})
    return "".join(f"{k}: {v}\n" for k, v in body.items())


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


class Signer:
    """A throwaway OpenPGP key in its own gpg home, and its public keyring."""

    def __init__(self, root: Path, name: str = "envkit test archive") -> None:
        need("gpg")
        self.home = root / "gnupg"
        self.home.mkdir(mode=0o700)
        self._gpg("--quick-gen-key", f"{name} <test@example.invalid>", "ed25519", "sign", "never")
        self.keyring = root / "keyring.gpg"
        self.keyring.write_bytes(self._gpg("--export"))

    def _gpg(self, *args: str, data: bytes | None = None) -> bytes:
        argv = ["gpg", "--batch", "--quiet", "--homedir", str(self.home), "--passphrase", ""]
        argv += ["--pinentry-mode", "loopback", *args]
        done = subprocess.run(argv, input=data, capture_output=True, check=True)
        return done.stdout

    def close(self) -> None:
        """Stop the gpg-agent that gpg started for this home (it outlives the test)."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
        )

    def clearsign(self, text: bytes) -> bytes:
        return self._gpg("--clearsign", data=text)

    def detach(self, text: bytes) -> bytes:
        return self._gpg("--detach-sign", data=text)


def release_text(files: dict[str, bytes], suite: str = "testing") -> bytes:
    lines = [
        f"Suite: {suite}",
        f"Codename: {suite}",
        "Architectures: amd64",
        "Date: Sat, 10 Jun 2023 09:00:00 UTC",
        "SHA256:",
    ]
    for path, data in files.items():
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {path}")
    return ("\n".join(lines) + "\n").encode()


_WRITE_MODES: dict[str, Literal["w:", "w:gz", "w:xz"]] = {"": "w:", "gz": "w:gz", "xz": "w:xz"}


def tar_bytes(
    members: Sequence[tuple[tarfile.TarInfo, bytes | None]], compress: Literal["", "gz", "xz"] = ""
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=_WRITE_MODES[compress], format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def ar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out += header.encode()
        out += data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


def deb_bytes(data_members: Sequence[tuple[tarfile.TarInfo, bytes | None]], control: str) -> bytes:
    """A .deb built by hand (for members dpkg-deb refuses to pack)."""
    ctrl = tarfile.TarInfo("./control")
    return ar_bytes(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", tar_bytes([(ctrl, control.encode())], "gz")),
            ("data.tar.xz", tar_bytes(data_members, "xz")),
        ]
    )


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``root``; yields its URL."""
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
