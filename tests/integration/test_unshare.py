"""``envkit unshare``: a command as container root, and what it is for rootless: removing
image files that belong to subordinate ids (snapshots keep the image's owners)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless


def _envkit(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # A PATH container root can search (root's own may hold dirs it cannot enter).
    return homes.cli(home, argv, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_the_command_runs_as_root_and_its_exit_code_is_returned(tmp_path: Path) -> None:
    homes.require_containers()
    done = _envkit(tmp_path, "unshare", "sh", "-c", "id -u; exit 7")
    assert done.returncode == 7, done.stderr
    assert done.stdout == "0\n"
    missing = _envkit(tmp_path, "unshare", "no-such-command-here")
    assert missing.returncode == 127
    assert missing.stderr.strip().endswith("no-such-command-here: No such file or directory")


def test_rootless_files_of_other_container_users_are_removed_through_unshare(
    tmp_path: Path,
) -> None:
    from envkit.host import idmap

    if os.geteuid() == 0 or not idmap.plan().use_helpers:
        pytest.skip("only rootless with subordinate ids keeps files of other users")
    app = images.layer_tar(
        {"home/app/data": b"x"},
        owners={"home/app": (1000, 1000, 0o700), "home/app/data": (1000, 1000, 0o600)},
    )
    home = homes.loaded_home(tmp_path, [images.busybox_layer(), app], "owned:1")
    assert _envkit(home, "run", "--rm", "owned:1", "true").returncode == 0
    snapshot = next(p for p in (home / "snapshots").iterdir() if (p / "home" / "app").exists())
    assert (snapshot / "home" / "app").stat().st_uid == idmap.plan().to_host_uid(1000)
    outside = subprocess.run(["rm", "-rf", str(home)], capture_output=True, text=True)
    assert outside.returncode == 1 and "Permission denied" in outside.stderr, outside.stderr
    done = _envkit(tmp_path, "unshare", "rm", "-rf", str(home))
    assert done.returncode == 0, done.stderr
    assert not home.exists()
