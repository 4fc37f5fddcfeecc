"""cgroup v2 limits against a fake cgroup directory tree (this host delegates none)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.errors import SpecError
from envkit.runtime import cgroups
from envkit.runtime.cgroups import Limits


def fake_parent(tmp_path: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    parent = tmp_path / "user.slice"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text(controllers + "\n")
    (parent / "cgroup.subtree_control").write_text("\n")
    return parent


def test_parse_docker_spellings() -> None:
    limits = Limits.parse("256m", "0.5", "100")
    assert limits.memory == 256 << 20 and limits.cpus == 0.5 and limits.pids == 100
    assert limits.files() == {
        "memory.max": str(256 << 20),
        "memory.swap.max": "0",
        "cpu.max": "50000 100000",
        "pids.max": "100",
    }
    assert Limits.parse("1g", None, "-1").files() == {
        "memory.max": str(1 << 30),
        "memory.swap.max": "0",
        "pids.max": "max",
    }
    assert not Limits.parse(None, None, None)
    for bad in (("lots", None, None), ("1k", None, None), (None, "-1", None), (None, None, "0")):
        with pytest.raises(SpecError):
            Limits.parse(*bad)


def test_create_writes_limits_and_enables_controllers(tmp_path: Path) -> None:
    parent = fake_parent(tmp_path)
    path = Path(cgroups.create(Limits.parse("64m", "2", "10"), "envkit-abc", parent))
    assert path == parent / "envkit-abc"
    assert set((parent / "cgroup.subtree_control").read_text().split()) == {
        "+memory",
        "+cpu",
        "+pids",
    }
    assert (path / "memory.max").read_text() == str(64 << 20)
    assert (path / "cpu.max").read_text() == "200000 100000"
    assert (path / "pids.max").read_text() == "10"
    assert not (path / "memory.swap.max").exists()  # no swap accounting in this tree
    for file in path.iterdir():  # a real cgroup dir is removable once empty of tasks
        file.unlink()
    cgroups.remove(str(path))
    assert not path.exists()
    cgroups.remove(str(path))  # a missing cgroup is fine


def test_refusal_names_the_missing_controller(tmp_path: Path) -> None:
    parent = fake_parent(tmp_path, controllers="cpu io")
    with pytest.raises(SpecError) as info:
        cgroups.create(Limits.parse("64m", None, "5"), "envkit-x", parent)
    text = str(info.value)
    assert "--memory, --pids-limit" in text
    assert "memory, pids controller" in text
    assert "Delegate=yes" in text  # the hint says how to delegate
    assert not (parent / "envkit-x").exists()


def test_own_cgroup_is_found_from_proc_files(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/x\n0::/user.slice/session-1.scope\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "24 1 0:22 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
        "25 1 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    )
    assert cgroups.own_cgroup(str(proc), str(mountinfo)) == Path(
        "/sys/fs/cgroup/unified/user.slice/session-1.scope"
    )
    proc.write_text("4:memory:/x\n")
    assert cgroups.own_cgroup(str(proc), str(mountinfo)) is None
