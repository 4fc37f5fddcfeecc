"""``envkit rmi`` of the image of a real running container is refused as docker refuses
it (exit 2, the container named); ``rmi -f`` untags and the container keeps running;
once the container is gone the image's content can go."""

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


def _envkit(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "envkit", *args], env=env, capture_output=True, text=True
    )


def test_rmi_of_a_running_containers_image(envkit_home: Path, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    images.build_archive(archive, [images.busybox_layer()])
    assert _envkit(envkit_home, "load", str(archive)).returncode == 0
    started = _envkit(envkit_home, "run", "-d", "--name", "user1", "busybox:1", "sleep", "60")
    assert started.returncode == 0, started.stderr
    try:
        refused = _envkit(envkit_home, "rmi", "busybox:1")
        assert refused.returncode == 2
        assert 'unable to remove repository reference "busybox:1" (must force)' in refused.stderr
        assert "(user1) is using its referenced image" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert "busybox" in _envkit(envkit_home, "images").stdout
        forced = _envkit(envkit_home, "rmi", "-f", "busybox:1")
        assert forced.returncode == 0 and forced.stdout == "Untagged: busybox:1\n"
        assert "user1" in _envkit(envkit_home, "ps").stdout  # still running
        by_id = _envkit(envkit_home, "rmi", "-f", _image_id(envkit_home))
        assert by_id.returncode == 2 and "(cannot be forced)" in by_id.stderr
    finally:
        _envkit(envkit_home, "rm", "-f", "user1")
    gone = _envkit(envkit_home, "rmi", _image_id(envkit_home))
    assert gone.returncode == 0 and "Deleted:" in gone.stdout


def _image_id(home: Path) -> str:
    out = _envkit(home, "images", "-q").stdout.split()
    assert len(out) == 1, out
    return out[0]
