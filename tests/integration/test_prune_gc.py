"""Issue 16 on real containers: kill -9 of a build mid-RUN, then fsck/prune; rmi + prune
collects snapshots; a running container's snapshots survive prune; rm takes the port log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration import homes
from tests.integration.test_containers import wait_for

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return homes.loaded_home(tmp_path)


def ok(home: Path, argv: list[str]) -> str:
    done = homes.cli(home, argv)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.stdout


def snapshot_dirs(home: Path) -> set[str]:
    top = home / "snapshots"
    return {p.name for p in top.iterdir() if p.is_dir()} if top.exists() else set()


def test_kill_9_mid_run_step_then_fsck_rerun_prune(home: Path, tmp_path: Path) -> None:
    (tmp_path / "img.py").write_text(
        "from envkit import Image\n"
        f"img = Image.from_({BUSYBOX!r}).run('head -c 2000000 /dev/zero > /big; sleep 30')\n"
    )
    argv = [sys.executable, "-m", "envkit", "build", f"{tmp_path / 'img.py'}:img", "-t", "k:1"]
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    build = home / "build"
    try:
        wait_for(
            lambda: build.exists() and any((d / "upper" / "big").exists() for d in build.iterdir()),
            timeout=60,
        )
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(build.iterdir())  # the killed build's upper dir
    fsck = homes.cli(home, ["fsck"])
    assert fsck.returncode == 1 and "of a killed build or run" in fsck.stdout
    assert "Deleted leftover" in ok(home, ["prune"])
    assert list(build.iterdir()) == []
    assert ok(home, ["fsck"]).endswith(": ok\n")


def test_rmi_then_prune_collects_snapshots_but_not_a_running_containers(home: Path) -> None:
    ok(home, ["tag", BUSYBOX, "other:1"])
    ok(home, ["run", "--rm", BUSYBOX, "true"])
    used = snapshot_dirs(home)
    assert used
    ok(home, ["run", "-d", "--name", "sleeper", BUSYBOX, "sleep", "60"])
    try:
        refused = homes.cli(home, ["rmi", BUSYBOX, "other:1"])  # docker refuses the last name
        assert refused.returncode == 2 and "sleeper" in refused.stderr, refused.stderr
        ok(home, ["rmi", "-f", "other:1"])  # untagged; the image stays for the container
        ok(home, ["prune"])
        assert snapshot_dirs(home) == used  # the running container still uses them
        assert ok(home, ["exec", "sleeper", "echo", "alive"]) == "alive\n"
    finally:
        homes.cli(home, ["rm", "-f", "sleeper"])
    ok(home, ["prune"])
    assert snapshot_dirs(home) == set()
    assert ok(home, ["fsck"]).endswith(": ok\n")


def test_rm_of_a_published_container_removes_its_network_files(home: Path) -> None:
    """Its published ports, endpoint, hosts and resolv.conf files all go with ``rm``
    (the network daemon forwards every port: there is no per-container log any more)."""
    ok(home, ["run", "-d", "--name", "pub", "-p", "0:80", BUSYBOX, "sleep", "60"])

    def files_of_pub() -> list[Path]:
        return [p for p in (home / "network").rglob("*") if p.is_file() and "pub" in p.name]

    assert files_of_pub()  # the forwarder's record, endpoint, hosts and resolv.conf
    ok(home, ["rm", "-f", "pub"])
    assert files_of_pub() == []


def test_system_df_counts_what_is_there(home: Path) -> None:
    ok(home, ["run", "--name", "done", BUSYBOX, "true"])
    lines = ok(home, ["system", "df"]).splitlines()
    assert lines[1].split()[:3] == ["Images", "1", "1"]
    assert lines[2].split()[:3] == ["Containers", "1", "0"]
    ok(home, ["rm", "done"])
