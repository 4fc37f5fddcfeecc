"""iptables' lock file lives in the network state directory, never in the temp dir, and
reaches iptables as an inherited descriptor (``/proc/self/fd/N``) that the holder's
user namespace can open where the path under a private home cannot be reached."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from envkit.network import firewall, state


def test_the_lock_is_in_the_state_dir_whatever_tmpdir_says(
    envkit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    lock = firewall.lock_file()
    assert Path(lock) == state.root() / "xtables.lock"
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o644


def test_iptables_gets_the_opened_lock_by_descriptor(envkit_home: Path) -> None:
    lock = firewall.lock_file()
    name = firewall._lock_for_iptables(lock)
    fd = int(name.rsplit("/", 1)[1])
    assert name == f"/proc/self/fd/{fd}" and os.get_inheritable(fd)
    assert os.path.samefile(name, lock)
    again = firewall.lock_file()  # a new call replaces (and closes) the old descriptor
    assert again == lock and firewall._lock_for_iptables("/elsewhere") == "/elsewhere"
    assert firewall._opened is not None and firewall._opened[1] != fd
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


def test_release_closes_the_descriptor(envkit_home: Path) -> None:
    firewall.lock_file()
    opened = firewall._opened
    assert opened is not None
    fd = opened[1]
    firewall.release_lock()
    assert firewall._opened is None
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
    firewall.release_lock()  # twice is fine
