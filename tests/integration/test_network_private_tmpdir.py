"""Networking with a private temp dir: as root with ``TMPDIR`` a 0700 folder, iptables'
lock file used to be put there, where the holder's user namespace (the host's root not
mapped in it) could not open it, and every networked container failed. The lock is now
in the network state directory, handed to iptables by file descriptor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import images

pytestmark = pytest.mark.usefixtures("userns")

if not images.have_busybox():
    pytest.skip("needs busybox-static", allow_module_level=True)


def _envkit(home: Path, tmpdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVKIT_HOME": str(home), "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [sys.executable, "-m", "envkit", *args], env=env, capture_output=True, text=True
    )


def test_a_networked_run_works_with_a_private_tmpdir(envkit_home: Path, tmp_path: Path) -> None:
    private = tmp_path / "private-tmp"
    private.mkdir(mode=0o700)
    archive = tmp_path / "busybox.tar"
    images.build_archive(archive, [images.busybox_layer()])
    assert _envkit(envkit_home, private, "load", str(archive)).returncode == 0
    assert _envkit(envkit_home, private, "network", "create", "privnet").returncode == 0
    try:
        done = _envkit(
            envkit_home, private, "run", "--rm", "--network", "privnet", "busybox:1", "true"
        )
        assert done.returncode == 0, done.stderr
        assert list(private.iterdir()) == []  # nothing of envkit's in the temp dir
    finally:
        _envkit(envkit_home, private, "network", "rm", "privnet")
