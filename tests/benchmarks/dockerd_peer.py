"""Debian's Docker Engine (``docker.io``, 20.10) as a benchmark peer: BuildKit builds.

:func:`private_dockerd` starts a ``dockerd`` of its own (data root, exec root, socket
and pid file under a temp dir; no iptables, no bridge: nothing of the host changes) and
stops it afterwards by its PID. It needs root and Debian's ``dockerd`` and
``/usr/bin/docker``; the newer ``docker`` CLI that may be first on PATH refuses
``DOCKER_BUILDKIT=1`` without buildx (HOST-NOTES). Without them it yields ``None`` and
the reason, and the benchmark reports the peer as not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"


def missing() -> str:
    """Why the peer cannot run here, or ``""``."""
    if not (os.path.exists(DOCKERD) and os.path.exists(DOCKER)):
        return "Debian's docker.io not installed (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "dockerd needs root"
    return ""


@contextmanager
def private_dockerd(base: Path) -> Iterator[tuple[list[str] | None, str]]:
    """``(docker argv, "")`` for a dockerd of this benchmark's own, or ``(None, why)``."""
    why = missing()
    if why:
        yield None, why
        return
    root = base / "dockerd"
    root.mkdir()
    sock = root / "docker.sock"
    log = open(root / "log", "wb")  # noqa: SIM115 (closed below, after the daemon)
    daemon = subprocess.Popen(
        [
            DOCKERD,
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"),
            "-H", f"unix://{sock}",
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    docker = [DOCKER, "-H", f"unix://{sock}"]
    try:
        deadline = time.monotonic() + 30
        while True:
            ok = subprocess.run([*docker, "version"], capture_output=True, check=False)
            if ok.returncode == 0:
                break
            if daemon.poll() is not None or time.monotonic() > deadline:
                tail = (root / "log").read_text(errors="replace").strip().splitlines()[-3:]
                yield None, "dockerd did not start: " + " / ".join(tail)[-300:]
                return
            time.sleep(0.1)
        yield docker, ""
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def buildkit_env() -> dict[str, str]:
    """The environment for BuildKit builds through Debian's client."""
    return {**os.environ, "DOCKER_BUILDKIT": "1"}
