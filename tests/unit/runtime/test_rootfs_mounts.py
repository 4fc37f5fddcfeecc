"""The container's mounts against Docker's defaults and the OCI runtime spec, through the
fake kernel (tables and their sources: ``reference_tables.py``).

Every test runs :func:`envkit.runtime.rootfs.build` (or one of its steps) in an empty
working directory, as pid 1 does, and checks the ``mount(2)`` calls it made.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from envkit.errors import RuntimeError_
from envkit.host.syscalls import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from envkit.runtime import rootfs
from envkit.runtime.config import BindMount, ContainerConfig, TmpfsMount
from tests.unit.runtime.fake_kernel import FakeKernel, Mount, flag_names
from tests.unit.runtime.reference_tables import (
    DOCKER_MASKED_PATHS,
    DOCKER_MOUNTS,
    DOCKER_READONLY_PATHS,
    DOCKER_THERMAL_THROTTLE,
    MOUNT_OPTION_FLAGS,
    OCI_DEFAULT_DEVICES,
    PROC_ENTRIES,
    RUNC_DEV_SYMLINKS,
)

pytestmark = pytest.mark.usefixtures("pid1_dir")

#: Where envkit is stricter than Docker, and why.
ENVKIT_EXTRA_FLAGS = {"/dev": MS_NOEXEC}  # nothing in /dev is run; podman does the same
#: Docker options envkit leaves out, and why: atime updates isolate nothing.
ENVKIT_OMITTED_OPTIONS = {"strictatime"}
#: Docker mounts envkit does not make yet (docs/dev/runtime.md, "Not done yet").
NOT_MOUNTED_YET = {"/sys/fs/cgroup"}


def build(
    kernel: FakeKernel,
    layer: Path,
    *,
    mounts: tuple[BindMount | TmpfsMount, ...] = (),
    shm_size: int = 0,
) -> ContainerConfig:
    config = ContainerConfig(
        layers=[str(layer)],
        argv=["/app"],
        upper_dir=str(layer.parent / "upper"),
        work_dir=str(layer.parent / "work"),
        hostname="web",
        mounts=mounts,
        shm_size=shm_size,
    )
    sources = [m.source if isinstance(m, BindMount) else None for m in mounts]
    rootfs.build(config, [str(layer)], config.upper_dir, config.work_dir, sources, kernel)
    return config


def at(kernel: FakeKernel, path: str) -> list[Mount]:
    """The mounts made on container path ``path``."""
    target = os.path.normpath(rootfs.ROOT + path)
    return [m for m in kernel.mounts() if m.target == target]


def _mode_options(data: str | None) -> set[str]:
    # "mode=0755" and Docker's "mode=755" are one mode.
    options = set()
    for option in (data or "").split(","):
        key, _, value = option.partition("=")
        options.add(f"mode={int(value, 8):o}" if key in ("mode", "ptmxmode") else option)
    return options


@pytest.mark.parametrize(
    ("destination", "fstype", "source", "options"),
    [
        pytest.param(
            *entry,
            id=entry[0],
            marks=[pytest.mark.xfail(strict=True, reason="not mounted yet")]
            if entry[0] in NOT_MOUNTED_YET
            else [],
        )
        for entry in DOCKER_MOUNTS
    ],
)
def test_docker_default_mounts_have_dockers_flags(
    kernel: FakeKernel,
    layer: Path,
    destination: str,
    fstype: str,
    source: str,
    options: tuple[str, ...],
) -> None:
    build(kernel, layer)
    made = [m for m in at(kernel, destination) if m.fstype == fstype]
    assert len(made) == 1, f"{destination}: {made}"
    flags = ENVKIT_EXTRA_FLAGS.get(destination, 0)
    data: set[str] = set()
    for option in options:
        if option in ENVKIT_OMITTED_OPTIONS:
            continue
        if option in MOUNT_OPTION_FLAGS:
            flags |= MOUNT_OPTION_FLAGS[option]
        else:
            data.add(option)
    assert (made[0].source, made[0].flags) == (source, flag_names(flags))
    assert _mode_options(",".join(data)) <= _mode_options(made[0].data), made[0].data


def test_oci_default_devices_are_the_hosts_nodes_bound_in(kernel: FakeKernel, layer: Path) -> None:
    build(kernel, layer)
    dev = os.path.join(rootfs.ROOT, "dev")
    binds = [m for m in kernel.mounts() if m.flags == "MS_BIND" and m.target.startswith(dev)]
    # A user namespace may not mknod: each node is the host's, bound on an empty file.
    assert binds == [
        Mount(f"/dev/{name}", f"{dev}/{name}", None, "MS_BIND", None)
        for name in OCI_DEFAULT_DEVICES
    ]
    assert os.readlink(os.path.join(dev, "ptmx")) == "pts/ptmx"
    for link, target in RUNC_DEV_SYMLINKS.items():
        assert os.readlink(os.path.join(dev, link)) == target


def _mask(path: str) -> Mount:
    """runc's maskPath: a read-only tmpfs on a directory, /dev/null bound on a file."""
    target = os.path.normpath(rootfs.ROOT + path)
    if os.path.isdir(target):
        return Mount("tmpfs", target, "tmpfs", "MS_RDONLY", "size=0")
    return Mount("/dev/null", target, None, "MS_BIND", None)


def masks(kernel: FakeKernel) -> list[Mount]:
    """The mounts that hide a path (not the bind of the /dev/null device itself)."""
    dev = os.path.join(rootfs.ROOT, "dev", "")
    return [
        m
        for m in kernel.mounts()
        if (m.source == "/dev/null" and not m.target.startswith(dev)) or m.data == "size=0"
    ]


@pytest.mark.parametrize("path", DOCKER_MASKED_PATHS)
def test_dockers_masked_paths_are_hidden(kernel: FakeKernel, layer: Path, path: str) -> None:
    build(kernel, layer)
    assert at(kernel, path) == [_mask(path)]


@pytest.mark.parametrize("cpu", [0, 1])
def test_each_cpus_thermal_throttle_is_hidden(kernel: FakeKernel, layer: Path, cpu: int) -> None:
    build(kernel, layer)
    path = DOCKER_THERMAL_THROTTLE.format(cpu)
    assert at(kernel, path) == [_mask(path)]


def test_nothing_else_is_masked(kernel: FakeKernel, layer: Path) -> None:
    build(kernel, layer)
    thermal = [DOCKER_THERMAL_THROTTLE.format(cpu) for cpu in (0, 1)]
    assert sorted(masks(kernel)) == sorted(_mask(p) for p in (*DOCKER_MASKED_PATHS, *thermal))


def test_a_masked_path_the_kernel_lacks_is_skipped(layer: Path) -> None:
    kernel = FakeKernel(contents={"proc": ("kcore",), "sysfs": ()})
    build(kernel, layer)
    assert masks(kernel) == [_mask("/proc/kcore")]


@pytest.mark.parametrize("path", DOCKER_READONLY_PATHS)
def test_dockers_readonly_paths_are_bound_then_remounted_read_only(
    kernel: FakeKernel, layer: Path, path: str
) -> None:
    build(kernel, layer)
    target = os.path.normpath(rootfs.ROOT + path)
    # runc readonlyPath: a recursive bind on itself, then a read-only remount that
    # repeats the flags the kernel locks (procfs's nosuid, nodev, noexec).
    locked = MS_NOSUID | MS_NODEV | MS_NOEXEC
    assert at(kernel, path) == [
        Mount(target, target, None, flag_names(MS_BIND | MS_REC), None),
        Mount(None, target, None, flag_names(MS_BIND | MS_REMOUNT | MS_RDONLY | locked), None),
    ]


def test_devpts_without_gid_5_when_the_tty_group_is_not_mapped(
    kernel: FakeKernel, layer: Path
) -> None:
    kernel.fail_on("mount", lambda a: a[2] == "devpts" and "gid=5" in str(a[4]), errno.EINVAL)
    build(kernel, layer)
    opts = "newinstance,ptmxmode=0666,mode=0620"
    assert [m.data for m in at(kernel, "/dev/pts")] == [opts + ",gid=5", opts]


def test_overlay_without_userxattr_on_kernels_before_5_11(kernel: FakeKernel, layer: Path) -> None:
    kernel.fail_on("mount", lambda a: str(a[4]).endswith(",userxattr"), errno.EINVAL)
    build(kernel, layer)
    tmp = layer.parent
    opts = f"lowerdir={layer},upperdir={tmp}/upper,workdir={tmp}/work"
    assert [m.data for m in at(kernel, "/")] == [opts + ",userxattr", opts]


def test_sys_is_a_read_only_bind_where_sysfs_is_refused(layer: Path) -> None:
    host_sys = MS_NOSUID | MS_NODEV | MS_NOEXEC
    kernel = FakeKernel(contents={"proc": PROC_ENTRIES}, host={"/sys": host_sys})
    kernel.fail_on("mount", lambda a: a[2] == "sysfs")
    build(kernel, layer)
    target = os.path.normpath(rootfs.ROOT + "/sys")
    assert at(kernel, "/sys") == [
        Mount("sysfs", target, "sysfs", flag_names(host_sys | MS_RDONLY), None),
        Mount("/sys", target, None, flag_names(MS_BIND | MS_REC), None),
        Mount(None, target, None, flag_names(MS_BIND | MS_REMOUNT | MS_RDONLY | host_sys), None),
    ]


def test_user_mounts(kernel: FakeKernel, layer: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    kernel = FakeKernel(contents={"proc": PROC_ENTRIES}, host={str(data): MS_NOSUID | MS_NODEV})
    build(
        kernel,
        layer,
        mounts=(BindMount(str(data), "/data", readonly=True), TmpfsMount("/tmp", 1 << 20, 0o1777)),
    )
    target = os.path.normpath(rootfs.ROOT + "/data")
    # A read-only bind keeps the flags its source's mount has (locked in a user ns).
    assert at(kernel, "/data") == [
        Mount(str(data), target, None, flag_names(MS_BIND | MS_REC), None),
        Mount(
            None,
            target,
            None,
            flag_names(MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV),
            None,
        ),
    ]
    tmp = os.path.normpath(rootfs.ROOT + "/tmp")
    assert at(kernel, "/tmp") == [
        Mount("tmpfs", tmp, "tmpfs", flag_names(MS_NOSUID | MS_NODEV), "mode=1777,size=1048576")
    ]


def test_a_user_mount_target_that_is_an_image_symlink_stays_in_the_root(
    kernel: FakeKernel, layer: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # The image's /data is a link out of it; mount_root made the root, fill it after.
    original = rootfs.mount_root

    def root_with_link(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        os.symlink("/etc", os.path.join(rootfs.ROOT, "data"))

    mp = pytest.MonkeyPatch()
    mp.setattr(rootfs, "mount_root", root_with_link)
    try:
        build(kernel, layer, mounts=(BindMount(str(data), "/data"),))
    finally:
        mp.undo()
    assert [m.target for m in kernel.mounts() if m.source == str(data)] == [
        os.path.normpath(rootfs.ROOT + "/etc")
    ]


def test_a_failing_mount_names_its_path_and_stops_the_build(
    kernel: FakeKernel, layer: Path
) -> None:
    kernel.fail_on("mount", lambda a: a[2] == "mqueue")
    with pytest.raises(OSError) as failed:
        build(kernel, layer)
    assert failed.value.strerror == "mount mqueue on root/dev/mqueue: Operation not permitted"
    assert kernel.calls[-1].name == "mount" and kernel.calls[-1].args[2] == "mqueue"
    assert "pivot_root" not in kernel.names()


def test_a_mount_point_refused_inside_a_bind_mount_names_the_host_directory(
    kernel: FakeKernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose's ``./app:/app`` with ``- /app/node_modules``: as root, container root (a
    subordinate id) may not create ``node_modules`` in the host's ``./app``; the error
    says which host directory to create, not "a read-only root needs it in the image"."""
    app = tmp_path / "app"
    refused = "cannot create mount point /app/node_modules in the container root"

    def mountpoint(root: str, path: str, directory: bool = True) -> str:
        if path == "/app/node_modules":
            raise RuntimeError_(f"{refused}: Permission denied", hint="not this one")
        return str(tmp_path / path.lstrip("/"))

    monkeypatch.setattr(rootfs, "_mountpoint", mountpoint)
    mounts = (BindMount(str(app), "/app"), TmpfsMount("/app/node_modules"))
    rootfs.mount_user(str(tmp_path), [BindMount(str(app), "/app")], [str(app)], kernel)
    with pytest.raises(RuntimeError_) as caught:
        rootfs.mount_user(str(tmp_path), mounts, [str(app), None], kernel)
    assert caught.value.message.startswith(refused)
    assert f"the host directory {app}" in caught.value.message
    assert caught.value.hint is not None
    assert f"create {app}/node_modules on the host" in caught.value.hint


def test_shm_size_sizes_dev_shm_and_a_tmpfs_takes_its_size_and_mode(
    kernel: FakeKernel, layer: Path
) -> None:
    """``--shm-size 1g`` (compose's ``shm_size``) and ``--tmpfs /run:size=1m,mode=1770``."""
    build(kernel, layer, mounts=(TmpfsMount("/run", 1 << 20, 0o1770),), shm_size=1 << 30)
    (shm,) = at(kernel, "/dev/shm")
    assert shm.data == f"mode=1777,size={1 << 30}"
    (run,) = at(kernel, "/run")
    assert run.data == f"mode=1770,size={1 << 20}"


def test_the_default_dev_shm_is_dockers_64m(kernel: FakeKernel, layer: Path) -> None:
    build(kernel, layer)
    (shm,) = at(kernel, "/dev/shm")
    assert shm.data == "mode=1777,size=65536k"
