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


def test_a_process_about_to_exec_drops_its_own_leases_only(envkit_home: Path) -> None:
    """A stack supervisor entering its hold phase ``exec``s with the same pid and start
    time: its leases would count as alive until it ends, and kept the holder and network
    daemon up after a teardown (found with the owner of a held stack killed)."""
    from envkit.network import endpoints

    with state.locked():
        endpoints.take_lease(endpoints.lease_name())
        endpoints.take_lease(endpoints.lease_name())
        endpoints.take_lease(endpoints.process_lease())
    leases = state.root() / "leases"
    other = leases / "1-abcdef.json"
    other.write_text('{"pid": 1, "start": 1}')
    assert len(list(leases.glob("*.json"))) == 4
    endpoints.release_own_leases()
    assert sorted(leases.glob("*.json")) == [other]
