"""The built-in image sources: ``ref`` (local store) and ``oci-archive`` (Image.load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.errors import ArchiveError, ImageNotFoundError
from envkit.oci.archive_read import load_archive
from envkit.oci.archive_write import save_archive
from envkit.plugins.manager import PluginManager
from envkit.store.store import Store
from tests.images import build_archive, docker_archive, layer_tar


def one_layer() -> list[bytes]:
    return [layer_tar({"etc/hostname": b"box\n"})]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def manager() -> PluginManager:
    return PluginManager(load_entry_points=False)


def test_builtin_sources_are_registered(manager: PluginManager) -> None:
    assert {"ref", "oci-archive"} <= set(manager.image_sources())


def test_ref_source_resolves_ref_and_digest(
    tmp_path: Path, store: Store, manager: PluginManager
) -> None:
    built = build_archive(tmp_path / "img.tar", one_layer(), ref="busybox:1")
    manager.image_source("oci-archive").provide({"path": str(tmp_path / "img.tar")}, store)
    source = manager.image_source("ref")
    assert source.provide({"ref": "busybox:1"}, store).digest == built.manifest_digest
    pinned = source.provide({"ref": "busybox:9", "digest": built.manifest_digest}, store)
    assert pinned.digest == built.manifest_digest


def test_ref_source_names_the_missing_base(store: Store, manager: PluginManager) -> None:
    with pytest.raises(ImageNotFoundError, match=r"base image 'python:3\.11' is not in the local"):
        manager.image_source("ref").provide({"ref": "python:3.11"}, store)


def test_archive_source_loads_and_tags(
    tmp_path: Path, store: Store, manager: PluginManager
) -> None:
    built = docker_archive(tmp_path / "d.tar", one_layer(), repo_tags=("me/app:1",))
    desc = manager.image_source("oci-archive").provide({"path": str(tmp_path / "d.tar")}, store)
    assert store.manifest(desc).config.digest == built.config_digest
    assert store.resolve("me/app:1").digest == desc.digest


def test_archive_source_with_several_images_needs_a_ref(
    tmp_path: Path, store: Store, manager: PluginManager
) -> None:
    built = docker_archive(tmp_path / "d.tar", one_layer(), repo_tags=("me/app:1",))
    docker_archive(tmp_path / "e.tar", [layer_tar({"x": b"2"})], repo_tags=("me/other:1",))
    two = tmp_path / "two.tar"
    load_archive(tmp_path / "d.tar", store)
    load_archive(tmp_path / "e.tar", store)
    save_archive(store, ["me/app:1", "me/other:1"], two)
    source = manager.image_source("oci-archive")
    fresh = Store(tmp_path / "fresh")
    with pytest.raises(ArchiveError, match="holds 2 images, which one"):
        source.provide({"path": str(two)}, fresh)
    desc = source.provide({"path": str(two), "ref": "me/app:1"}, fresh)
    assert fresh.manifest(desc).config.digest == built.config_digest
    with pytest.raises(ArchiveError, match="no image named 'me/nope:1' in the archive"):
        source.provide({"path": str(two), "ref": "me/nope:1"}, fresh)


def test_archive_source_needs_a_path(store: Store, manager: PluginManager) -> None:
    with pytest.raises(ArchiveError, match="parameter 'path' missing"):
        manager.image_source("oci-archive").provide({}, store)
