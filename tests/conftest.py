"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def envkit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty ``$ENVKIT_HOME`` for one test."""
    home = tmp_path / "envkit-home"
    home.mkdir(mode=0o700)  # as envkit makes it: a looser one is tightened with a notice
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    yield home


@pytest.fixture(scope="session", autouse=True)
def _temp_files_stay_removable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Rootless, snapshots keep the image's owners as subordinate ids, which pytest
    cannot remove when it prunes old temp dirs (it fails with "Directory not empty").
    After the session everything below the temp dir is given back to the caller, from
    inside a user namespace with the containers' maps; the content stays for a look."""
    yield
    import os

    from envkit.host import idmap

    if os.geteuid() == 0 or not idmap.plan().use_helpers:
        return
    from envkit.host.as_root import call_as_container_root

    call_as_container_root(lambda: _own_all(str(tmp_path_factory.getbasetemp())))


def _own_all(top: str) -> None:
    import os

    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            os.lchown(path, 0, 0)  # container root: the caller
            if name in dirnames and not os.path.islink(path):
                os.chmod(path, os.lstat(path).st_mode | 0o700)
