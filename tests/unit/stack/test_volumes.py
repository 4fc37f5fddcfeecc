"""A stack's volumes through their backends: mount and unmount per container, the
runtime's mounts in the service's order, non-persistent volumes removed at down."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from envkit import Service, Stack, Volume
from envkit.builtin.volumes import LocalVolumes, TmpfsVolumes
from envkit.errors import PluginError, VolumeError
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import MountSource, VolumeBackend
from envkit.plugins.manager import PluginManager, reset_manager
from envkit.runtime.config import BindMount, TmpfsMount
from envkit.stack import volumes


class Recording(TmpfsVolumes):
    """The tmpfs backend under another name, recording mounts; fails to mount ``bad``."""

    name = "rec"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str, str]] = []

    def mount(self, volume: str, mount_id: str) -> MountSource:
        if volume.endswith("_bad"):
            raise RuntimeError("backend bug")
        self.calls.append(("mount", volume, mount_id))
        return super().mount(volume, mount_id)

    def unmount(self, volume: str, mount_id: str) -> None:
        self.calls.append(("unmount", volume, mount_id))


class Local(LocalVolumes):
    name = "dirs"


class Backends:
    def __init__(self, parts: Sequence[VolumeBackend]) -> None:
        self.parts = parts

    @hookimpl
    def envkit_volume_backends(self) -> Sequence[VolumeBackend]:
        return self.parts


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[Recording, Local]]:
    rec, local = Recording(tmp_path / "rec"), Local(tmp_path / "dirs", tmp_path / "snaps")
    manager = PluginManager(load_entry_points=False)
    manager.register(Backends([rec, local]), name="test-backends")
    reset_manager(manager)
    try:
        yield rec, local
    finally:
        reset_manager(None)


def stack_of(*mounts: tuple[Volume | str, str], base: Path) -> Stack:
    service = Service("app", image="busybox:1", volumes=dict(mounts))
    return Stack("s", services=[service]).with_base_dir(base)


def test_volumes_mount_in_the_services_order_and_unmount(
    backends: tuple[Recording, Local], tmp_path: Path
) -> None:
    rec, local = backends
    scratch = Volume("scratch", backend="rec", options={"size": "1m"})
    data = Volume("data", backend="dirs")
    (tmp_path / "conf").mkdir()
    # A service keeps its mounts sorted by target.
    stack = stack_of((scratch, "/a"), ("./conf", "/b"), (data, "/c"), base=tmp_path)
    assert sorted(volumes.ensure(stack)) == ["s_data", "s_scratch"]
    mounts = stack["app"].volumes
    attached = volumes.attach(stack, mounts, "s-app-1")
    assert rec.calls == [("mount", "s_scratch", "s-app-1")]
    assert [a.name for a in attached] == ["s_scratch", "s_data"]
    assert attached[0].host_dir is None
    assert attached[1].host_dir == local.mountpoint("s_data")
    assert volumes.runtime_mounts(stack, mounts, attached) == [
        TmpfsMount("/a", size=1 << 20, mode=0o1777),
        BindMount(str(tmp_path / "conf"), "/b"),
        BindMount(str(local.mountpoint("s_data")), "/c"),
    ]
    volumes.detach(attached)
    assert rec.calls[-1] == ("unmount", "s_scratch", "s-app-1")


def test_a_failed_mount_unmounts_the_ones_before_and_names_the_backend(
    backends: tuple[Recording, Local], tmp_path: Path
) -> None:
    rec, _ = backends
    good, bad = Volume("good", backend="rec"), Volume("bad", backend="rec")
    stack = stack_of((good, "/a"), (bad, "/b"), base=tmp_path)
    volumes.ensure(stack)
    with pytest.raises(VolumeError, match=r"backend 'rec' failed to mount volume 's_bad'"):
        volumes.attach(stack, stack["app"].volumes, "m1")
    assert rec.calls == [("mount", "s_good", "m1"), ("unmount", "s_good", "m1")]


def test_only_bind_volumes_are_seeded_or_handed_over(
    backends: tuple[Recording, Local], tmp_path: Path
) -> None:
    _, local = backends
    layer = tmp_path / "layer"
    (layer / "scratch").mkdir(parents=True)
    (layer / "scratch" / "f").write_text("x")
    (layer / "data").mkdir()
    (layer / "data" / "g").write_text("y")
    stack = stack_of(
        (Volume("scratch", backend="rec"), "/scratch"),
        (Volume("data", backend="dirs"), "/data"),
        base=tmp_path,
    )
    volumes.ensure(stack)
    attached = volumes.attach(stack, stack["app"].volumes, "m")
    assert volumes.seed(attached, [str(layer)]) == ["s_data"]
    assert (local.mountpoint("s_data") / "g").read_text() == "y"
    tmpfs = [a for a in attached if a.name == "s_scratch"]
    volumes.hand_to(tmpfs, 1000, 1000)  # nothing on the host to chown, no mountpoint asked


def test_down_removes_only_non_persistent_volumes(
    backends: tuple[Recording, Local], tmp_path: Path
) -> None:
    rec, local = backends
    stack = stack_of(
        (Volume("scratch", backend="rec"), "/scratch"),
        (Volume("data", backend="dirs"), "/data"),
        base=tmp_path,
    )
    volumes.ensure(stack)
    entries = ["rec:s_scratch", "dirs:s_data", "gone-plugin:s_other"]
    assert volumes.remove_transient(entries) == ["s_scratch"]
    assert rec.list() == [] and local.list() == ["s_data"]


def test_check_names_the_volume_of_a_missing_backend(backends: tuple[Recording, Local]) -> None:
    stack = stack_of((Volume("v", backend="nosuch"), "/v"), base=Path("/"))
    with pytest.raises(PluginError, match=r"Volume\('v'\): no volume backend named 'nosuch'"):
        volumes.check(stack)
    volumes.check(Stack("empty", services=[Service("a", image="busybox:1")]))


def test_recorded_mounts_are_unmounted_by_another_process(
    backends: tuple[Recording, Local], tmp_path: Path
) -> None:
    """What the state keeps of a container's mounts lets a supervisor that takes the
    container over (after kill -9, or after its hold phase) unmount them."""
    rec, _ = backends
    scratch = Volume("scratch", backend="rec", options={"size": "1m"})
    stack = stack_of((scratch, "/a"), (Volume("data", backend="dirs"), "/c"), base=tmp_path)
    volumes.ensure(stack)
    attached = volumes.attach(stack, stack["app"].volumes, "s-app-7")
    kept = volumes.recorded(attached)
    assert kept == [["rec", "s_scratch", "s-app-7"], ["dirs", "s_data", "s-app-7"]]
    again = volumes.reattached([*kept, ["gone-backend", "s_x", "s-app-7"]])
    assert [(a.backend.name, a.name, a.mount_id) for a in again] == [tuple(k) for k in kept]
    volumes.detach(again)
    assert rec.calls[-1] == ("unmount", "s_scratch", "s-app-7")
    assert volumes.reattached([]) == []
