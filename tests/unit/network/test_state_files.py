"""The network's state files: what a killed writer leaves is swept."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from envkit.network import state


def test_temp_files_of_dead_writers_are_swept_and_live_ones_kept(envkit_home: Path) -> None:
    """`write_json` writes ``.NAME.PID.tmp`` and renames it; a writer killed in between
    (kill -9 of `up`) left one under leases/ that nothing removed."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    leases = state.root() / "leases"
    leases.mkdir(parents=True)
    dead = leases / f".123-abc.json.{gone.pid}.tmp"
    live = leases / f".456-def.json.{os.getpid()}.tmp"
    kept = leases / "789-aaa.json"
    for path in (dead, live, kept):
        path.write_text("{}")
    state.write_json(state.root() / "networks" / "n.json", {"name": "n"})
    state.sweep_temp_files()
    assert not dead.exists()
    assert live.exists() and kept.exists()
    assert (state.root() / "networks" / "n.json").exists()
