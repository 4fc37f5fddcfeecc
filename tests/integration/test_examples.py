"""The README's example runs on this machine as a user would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.peers
def test_busybox_roundtrip_example() -> None:
    missing = [t for t in ("skopeo", "podman") if shutil.which(t) is None]
    if missing or not Path("/bin/busybox").exists():
        pytest.skip(f"needs skopeo, podman and busybox-static (missing: {missing})")
    run = subprocess.run(
        ["bash", str(ROOT / "examples/busybox-roundtrip/run.sh")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "round trip OK: identical digests" in run.stdout


def test_quickstart_brings_a_stack_up_and_down() -> None:
    if not Path("/bin/busybox").exists():
        pytest.skip("needs busybox-static")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("ENVKIT_HOME", None)
    run = subprocess.run(
        ["bash", str(ROOT / "examples/quickstart.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "hello from web\n" in run.stdout
    assert "client | runs so far: 1" in run.stdout
    assert run.stdout.rstrip().endswith("quickstart OK")
