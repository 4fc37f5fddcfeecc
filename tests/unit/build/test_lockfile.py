"""envkit.lock: format, atomic rewrite, resolution through the lock, and the build's use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envkit.build.executor import Builder
from envkit.build.keys import plan
from envkit.build.lockfile import LOCK_NAME, LockEntry, LockFile
from envkit.errors import StackFileError
from envkit.spec.image import Image
from envkit.store.store import Store
from tests.unit.store_helpers import make_image

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store.default()


def test_missing_lock_is_empty_and_not_written_unless_changed(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / LOCK_NAME)
    assert lock.entries == {}
    assert lock.save() is False
    assert not (tmp_path / LOCK_NAME).exists()


def test_entries_are_normalised_sorted_and_round_trip(tmp_path: Path) -> None:
    lock = LockFile(tmp_path / LOCK_NAME)
    lock.set("python:3.11", LockEntry(D2, "linux/amd64"))
    lock.set("busybox", LockEntry(D1, "linux/arm64/v8"))
    assert lock.save() is True
    data = json.loads((tmp_path / LOCK_NAME).read_text())
    assert list(data["images"]) == [
        "docker.io/library/busybox:latest",
        "docker.io/library/python:3.11",
    ]
    assert data["version"] == 1
    again = LockFile.load(tmp_path / LOCK_NAME)
    assert again.get("docker.io/library/busybox") == LockEntry(D1, "linux/arm64/v8")
    assert not again.changed
    assert again.save() is False
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_NAME]  # no temp file left


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"version": 99, "images": {}}',
        '{"version": 1, "images": {"busybox": {"digest": "md5:x"}}}',
        '{"version": 1, "images": {"Bad Name": {"digest": "sha256:' + "1" * 64 + '"}}}',
    ],
)
def test_malformed_lock_names_the_file_and_the_fix(tmp_path: Path, text: str) -> None:
    (tmp_path / LOCK_NAME).write_text(text)
    with pytest.raises(StackFileError) as info:
        LockFile.load(tmp_path / LOCK_NAME)
    assert str(tmp_path / LOCK_NAME) in info.value.message
    assert info.value.hint and LOCK_NAME in info.value.hint


def test_unpinned_base_is_locked_to_the_store_digest_then_kept(
    store: Store, tmp_path: Path
) -> None:
    first = make_image(store, "example.org/base:1", created="2024-01-01T00:00:00Z")
    lock = LockFile(tmp_path / LOCK_NAME)
    resolver = lock.resolver(store)
    assert resolver("example.org/base:1") == first.digest
    assert lock.get("example.org/base:1") is not None
    assert lock.changed
    # The tag moves in the store: the lock still answers the first digest.
    make_image(store, "example.org/base:1", created="2025-01-01T00:00:00Z")
    again = LockFile(tmp_path / LOCK_NAME, lock.entries).resolver(store)
    assert again("example.org/base:1") == first.digest
    assert again.pinned("example.org/base:1") == first.digest


def test_pinned_refs_are_not_recorded(store: Store, tmp_path: Path) -> None:
    desc = make_image(store, "example.org/base:1")
    lock = LockFile(tmp_path / LOCK_NAME)
    assert lock.resolver(store)(f"example.org/base@{desc.digest}") == desc.digest
    assert lock.entries == {}


def test_build_uses_the_locked_digest_after_the_tag_moves(store: Store, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    first = make_image(store, "example.org/base:1", created="2024-01-01T00:00:00Z")
    image = Image.from_("example.org/base:1").env(A="1")
    built = Builder(store, lock=LockFile.load(context / LOCK_NAME)).build(image, context)
    entry = LockFile.load(context / LOCK_NAME).get("example.org/base:1")
    assert entry is not None and entry.digest == first.digest
    make_image(store, "example.org/base:1", created="2025-01-01T00:00:00Z")
    rebuilt = Builder(store, lock=LockFile.load(context / LOCK_NAME)).build(image, context)
    assert rebuilt.image_id == built.image_id
    unlocked = Builder(store).build(image, context)
    assert unlocked.image_id != built.image_id


def test_plan_keys_equal_with_and_without_lock_for_the_same_digest(
    store: Store, tmp_path: Path
) -> None:
    make_image(store, "example.org/base:1")
    image = Image.from_("example.org/base:1")
    lock = LockFile(tmp_path / LOCK_NAME)
    locked = plan(image, tmp_path, resolve=lock.resolver(store))
    from envkit.build.keys import store_resolver

    plain = plan(image, tmp_path, resolve=store_resolver(store))
    assert locked.final.base_key == plain.final.base_key


def test_library_build_uses_a_lock_only_when_it_exists(store: Store, tmp_path: Path) -> None:
    from envkit.build.executor import build

    make_image(store, "example.org/base:1", created="2024-01-01T00:00:00Z")
    image = Image.from_("example.org/base:1").env(A="1")
    first = build(image, tmp_path, store=store)
    assert not (tmp_path / LOCK_NAME).exists()
    lock = LockFile(tmp_path / LOCK_NAME)
    lock.set("example.org/base:1", LockEntry(store.resolve("example.org/base:1").digest, ""))
    lock.save()
    make_image(store, "example.org/base:1", created="2025-01-01T00:00:00Z")
    assert build(image, tmp_path, store=store).image_id == first.image_id
