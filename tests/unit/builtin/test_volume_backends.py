"""The built-in volume backends pass the conformance suite; their own specifics."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from envkit.builtin.volumes import LocalVolumes, TmpfsVolumes, parse_size
from envkit.errors import PluginError, SpecError, VolumeError
from envkit.plugins.directory_backend import DATA
from envkit.plugins.interfaces import MountSource, VolumeBackend
from envkit.plugins.manager import PluginManager
from envkit.runtime.config import BindMount, TmpfsMount
from envkit.spec import Volume
from envkit.stack.volume_backends import check, runtime_mount
from envkit.testing.backend_suite import BackendSuite


class TestLocalBackend(BackendSuite):
    @pytest.fixture
    def backend(self, envkit_home: Path) -> VolumeBackend:
        return LocalVolumes()


class TestTmpfsBackend(BackendSuite):
    options = {"size": "8m"}
    bad_options = {"size": "lots"}

    @pytest.fixture
    def backend(self, envkit_home: Path) -> VolumeBackend:
        return TmpfsVolumes()


def test_local_layout_is_the_stack_codes(envkit_home: Path) -> None:
    backend = LocalVolumes()
    backend.create("shop_data", {})
    assert backend.mountpoint("shop_data") == envkit_home / "volumes" / "shop_data" / DATA
    assert backend.mount("shop_data", "x") == MountSource.bind(backend.mountpoint("shop_data"))


def test_local_refuses_other_options_for_an_existing_volume(envkit_home: Path) -> None:
    class Sized(LocalVolumes):
        option_names = frozenset({"tier"})

    backend = Sized()
    backend.create("v", {"tier": "a"})
    with pytest.raises(VolumeError, match="exists with other options"):
        backend.create("v", {"tier": "b"})


def test_restore_never_writes_outside_the_volume(envkit_home: Path, tmp_path: Path) -> None:
    backend = LocalVolumes()
    backend.create("v", {})
    (backend.mountpoint("v") / "keep").write_text("kept")
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        info = tarfile.TarInfo("../../../../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    path = backend.snapshot_path("v", "evil")
    path.parent.mkdir(parents=True)
    path.write_bytes(hostile.getvalue())
    with pytest.raises(VolumeError, match="cannot be restored"):
        backend.restore("v", "evil")
    assert (backend.mountpoint("v") / "keep").read_text() == "kept"  # all or nothing
    assert not list(envkit_home.rglob("escaped"))
    assert sorted(p.name for p in backend.mountpoint("v").parent.iterdir()) == [
        "_data",
        "options.json",
    ]


def test_a_restore_killed_between_renames_is_repaired(envkit_home: Path) -> None:
    backend = LocalVolumes()
    backend.create("v", {})
    data = backend.mountpoint("v")
    (data / "f").write_text("1")
    data.rename(data.parent / ".old-abc")  # the first rename happened, the second did not
    assert backend.list() == ["v"]
    assert (data / "f").read_text() == "1"


def test_tmpfs_mount_is_a_sized_tmpfs(envkit_home: Path) -> None:
    backend = TmpfsVolumes()
    backend.create("scratch", {"size": "16m", "mode": "0750"})
    source = backend.mount("scratch", "c1")
    assert source == MountSource("tmpfs", "", {"size": str(16 << 20), "mode": "750"})
    assert runtime_mount(source, "/scratch") == TmpfsMount("/scratch", 16 << 20, 0o750)
    default = TmpfsVolumes()
    default.create("plain", {})
    assert default.mount("plain", "c1").options["size"] == str(64 << 20)
    with pytest.raises(VolumeError, match="inside each container"):
        backend.mountpoint("scratch")


def test_runtime_mount_of_a_bind(tmp_path: Path) -> None:
    assert runtime_mount(MountSource.bind(tmp_path), "/d", readonly=True) == BindMount(
        str(tmp_path), "/d", readonly=True
    )


@pytest.mark.parametrize(
    ("text", "value"), [("512k", 512 << 10), ("64m", 64 << 20), ("1G", 1 << 30), ("100", 100)]
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "0", "-1m", "1.5g", "12q"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(SpecError, match="size"):
        parse_size(text)


def test_check_names_the_volume_before_anything_starts(envkit_home: Path) -> None:
    manager = PluginManager(load_entry_points=False)
    check([Volume("a"), Volume("t", backend="tmpfs", options={"size": "1m"})], manager)
    with pytest.raises(PluginError, match=r"Volume\('x'\): no volume backend named 'nfs'"):
        check([Volume("x", backend="nfs")], manager)
    with pytest.raises(SpecError, match=r"Volume\('y'\)\.options.*does not know option\(s\) z"):
        check([Volume("y", options={"z": "1"})], manager)
    with pytest.raises(SpecError, match=r"Volume\('t'\)\.options\['size'\]"):
        check([Volume("t", backend="tmpfs", options={"size": "huge"})], manager)
    assert not (envkit_home / "volumes").exists()  # nothing was created
