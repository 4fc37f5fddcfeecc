"""The resolved-image cache: used while index.json and the snapshots are unchanged."""

from __future__ import annotations

import os
from pathlib import Path

from envkit.store import resolved


def _setup(home: Path) -> tuple[Path, Path]:
    (home / "store").mkdir(parents=True)
    index = home / "store" / "index.json"
    index.write_text('{"schemaVersion": 2, "manifests": []}')
    mark = home / "snap.json"
    mark.write_text("{}")
    return index, mark


def _remember(name: str, mark: Path) -> resolved.Resolved:
    entry = resolved.Resolved("sha256:" + "a" * 64, {"Cmd": ["sh"]}, ["/lower/top", "/lower/b"])
    stamp = resolved.index_stamp()
    assert stamp is not None
    resolved.remember(name, entry, [str(mark)], stamp)
    return entry


def test_hit_after_remember(envkit_home: Path) -> None:
    _, mark = _setup(envkit_home)
    assert resolved.lookup("busybox:1") is None
    _remember("busybox:1", mark)
    found = resolved.lookup("busybox:1")
    assert found is not None
    assert found.image_id == "sha256:" + "a" * 64
    assert found.settings == {"Cmd": ["sh"]}
    assert found.layers == ("/lower/top", "/lower/b")
    assert resolved.lookup("busybox:2") is None


def test_stale_when_the_index_is_rewritten(envkit_home: Path) -> None:
    index, mark = _setup(envkit_home)
    _remember("busybox:1", mark)
    tmp = index.with_name("index.tmp")
    tmp.write_text('{"schemaVersion": 2, "manifests": []}')
    os.replace(tmp, index)  # as every tag/untag does: same content, new file
    assert resolved.lookup("busybox:1") is None


def test_stale_when_a_snapshot_mark_is_gone(envkit_home: Path) -> None:
    _, mark = _setup(envkit_home)
    _remember("busybox:1", mark)
    mark.unlink()
    assert resolved.lookup("busybox:1") is None


def test_unreadable_entries_are_ignored(envkit_home: Path) -> None:
    _, mark = _setup(envkit_home)
    _remember("busybox:1", mark)
    (entry,) = (envkit_home / "run-cache").iterdir()
    entry.write_text("{not json")
    assert resolved.lookup("busybox:1") is None
    entry.write_text('{"version": 1, "name": "busybox:1"}')
    assert resolved.lookup("busybox:1") is None
    _remember("busybox:1", mark)  # rewritten over the damaged one
    assert resolved.lookup("busybox:1") is not None


def test_no_store_means_no_entry(envkit_home: Path) -> None:
    assert resolved.index_stamp() is None
    assert resolved.lookup("busybox:1") is None
