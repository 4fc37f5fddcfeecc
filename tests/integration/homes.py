"""An ``ENVKIT_HOME`` holding a test image, as the container tests' module fixtures need."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import images


def require_containers() -> None:
    """Skip the calling test unless containers can run here: busybox-static for the test
    images, and user namespaces (with the probe's reason)."""
    from envkit.runtime import probes

    if not images.have_busybox():
        pytest.skip("busybox-static missing: apt-get install busybox-static")
    check = probes.user_namespaces()
    if not check.ok:
        pytest.skip(f"user namespaces unavailable: {check.detail}")


def cli(
    home: Path,
    argv: Sequence[str],
    *,
    timeout: float | None = 60,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """``python -m envkit ARGV`` with ``ENVKIT_HOME=home`` (and ``env`` on top), as a user
    runs it: stdin closed unless given, output captured, no ``ENVKIT_DEBUG``."""
    full = {**os.environ, "ENVKIT_HOME": str(home), **(env or {})}
    full.pop("ENVKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "envkit", *argv],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        stdin=stdin,
        timeout=timeout,
        check=False,
    )


def envkit_processes(home: Path) -> list[int]:
    """Processes of ``home`` other than containers' commands and this one: any whose
    environment names the home (monitors, helpers; the commands get the image's
    environment). Read from /proc, so callers need not import envkit."""
    mine = f"ENVKIT_HOME={home}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if mine in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                found.append(int(entry))
        except OSError:
            continue
    return found


def loaded_home(work: Path, layers: Sequence[bytes] | None = None, ref: str = "busybox:1") -> Path:
    """``work/home``, holding the image of ``layers`` (default: the test busybox) as
    ``ref``, loaded through ``envkit load`` as a user would. Skips as
    :func:`require_containers` does."""
    require_containers()
    archive = work / f"{ref.replace(':', '_').replace('/', '_')}.tar"
    images.build_archive(archive, layers, ref=ref)
    home = work / "home"
    done = cli(home, ["load", "-i", str(archive)])
    assert done.returncode == 0, done.stderr
    return home


@contextmanager
def host_http_server(directory: Path) -> Iterator[int]:
    """``python -m http.server`` serving ``directory`` on the host's 127.0.0.1 (what a
    container reaches at host.envkit.internal on a --host-loopback network); its port."""
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=str(directory),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline().split(" port ")[1].split()[0])
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
