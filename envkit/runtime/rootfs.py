"""The container's file system view, built inside its new mount namespace.

Called by the container's pid 1 before it starts the command; see docs/dev/runtime.md for
the order of operations and the reasons behind it. Every mount made here lives in the
container's mount namespace and disappears with it. The working directory is the
private tmpfs the spawner mounted over the state dir; host paths arrive as
``/proc/self/fd/N`` links to ``O_PATH`` descriptors opened before the ids changed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from envkit.errors import RuntimeError_
from envkit.host import syscalls
from envkit.host.syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
)
from envkit.runtime.config import BindMount, ContainerConfig, TmpfsMount

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.host.syscall_seam import Syscalls

MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_RELATIME = 1 << 21
# statvfs f_flag bit -> the mount flag a bind remount must repeat (locked flags).
_STATVFS_TO_MS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "core": "/proc/kcore",
    "ptmx": "pts/ptmx",
}
#: Docker's defaults (moby daemon/pkg/oci/defaults.go): hidden behind /dev/null or an
#: empty read-only tmpfs, as runc's maskPath does.
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",  # GHSA-6fw5-f8r9-fgfm
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",  # GHSA-jq35-85cj-fj4p
    "/sys/firmware",
)
#: Masked too, for each CPU that has it (GHSA-6fw5-f8r9-fgfm; Docker lists the host's).
CPU_DIR = "/sys/devices/system/cpu"
CPU_MASKED = "thermal_throttle"
#: Docker's read-only paths: bound on themselves and remounted read-only.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

ROOT = "root"  # the new root's mount point, relative to the private tmpfs


def secure_join(root: str, path: str) -> str:
    """``root/path`` with every symlink resolved as if ``root`` were ``/``.

    A mount target inside an image must never follow a symlink out of the image (an
    image with ``/data -> /etc`` must not get a volume mounted on the host's /etc).
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        if os.path.islink(candidate):
            links += 1
            if links > 40:
                raise RuntimeError_(f"too many symlinks resolving {path!r} in the rootfs")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            pending[:0] = [p for p in target.split("/") if p not in ("", ".")]
            continue
        done.append(part)
    return os.path.join(root, *done)


def _mountpoint(root: str, path: str, directory: bool = True) -> str:
    """The host-side path of container ``path``, created (dir or empty file) if missing."""
    target = secure_join(root, path)
    if os.path.lexists(target):
        return target
    try:
        os.makedirs(target if directory else os.path.dirname(target), exist_ok=True)
        if not directory:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    except OSError as exc:
        raise RuntimeError_(
            f"cannot create mount point {path} in the container root: {exc.strerror}",
            hint="a read-only root needs the mount point in the image",
        ) from None
    return target


def remount_readonly(path: str, extra: int = 0, kernel: Syscalls = syscalls) -> None:
    """Make the mount at ``path`` read-only, keeping the flags the kernel locks."""
    current = kernel.mount_flags(path)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | extra
    for bit, ms in _STATVFS_TO_MS.items():
        if current & bit:
            flags |= ms
    kernel.mount(None, path, None, flags)


def distinct_layers(layers: Sequence[str]) -> list[str]:
    """``layers`` (top first) without the later repeats of a directory.

    An image may list one layer twice (``.run("true").run("true")`` makes two equal
    diff_ids, so one snapshot); overlayfs refuses a lower dir given twice with ELOOP.
    The topmost copy covers the lower ones, so dropping them keeps the view. Repeats
    are found by (st_dev, st_ino): the paths are ``/proc/self/fd/N`` links, and two
    descriptors of one directory have different numbers.
    """
    seen: set[tuple[int, int]] = set()
    kept = []
    for layer in layers:
        st = os.stat(layer)
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            kept.append(layer)
    return kept


def mount_root(
    config: ContainerConfig,
    layers: Sequence[str],
    upper: str | None,
    work: str | None,
    kernel: Syscalls = syscalls,
) -> None:
    """Mount the container's root at :data:`ROOT`: overlay, or a plain read-only bind."""
    os.mkdir(ROOT, 0o755)
    layers = distinct_layers(layers)
    lower = ":".join(layers)
    if upper is not None and work is not None:
        opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
        try:
            kernel.mount("overlay", ROOT, "overlay", 0, opts + ",userxattr")
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            kernel.mount("overlay", ROOT, "overlay", 0, opts)  # kernels before 5.11
    elif len(layers) > 1:
        kernel.mount("overlay", ROOT, "overlay", MS_RDONLY, f"lowerdir={lower}")
    else:
        kernel.mount(layers[0], ROOT, None, MS_BIND | MS_REC)
        remount_readonly(ROOT, kernel=kernel)


def mount_proc(root: str, kernel: Syscalls = syscalls) -> None:
    """A procfs of the new pid namespace (the caller must be in it: pid 1)."""
    kernel.mount("proc", _mountpoint(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def set_sysctls(root: str, sysctls: Sequence[tuple[str, str]]) -> None:
    """Write each kernel parameter through the container's fresh /proc (before
    /proc/sys is made read-only): the namespaces it owns hold them."""
    for name, value in sysctls:
        path = os.path.join(root, "proc", "sys", *name.split("."))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise RuntimeError_(
                f"sysctl {name}={value}: {exc.strerror}",
                hint="check the name and value (sysctl -a shows the host's); a user "
                "namespace may set only what the container's namespaces own",
            ) from None


def mount_dev(
    root: str, kernel: Syscalls = syscalls, *, console: bool = False, shm_size: int = 0
) -> None:
    """A tmpfs /dev with the host's harmless devices bound in, devpts, shm (``shm_size``
    bytes, 0: docker's 64m) and mqueue; with ``console``, the empty file
    :func:`mount_console` mounts the terminal on."""
    dev = _mountpoint(root, "/dev")
    kernel.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k")
    for name in DEVICES:
        node = os.path.join(dev, name)
        os.close(os.open(node, os.O_CREAT | os.O_WRONLY, 0o666))
        # A user namespace may not mknod devices; binding the host's nodes is allowed.
        kernel.mount(f"/dev/{name}", node, None, MS_BIND)
    if console:
        os.close(os.open(os.path.join(dev, "console"), os.O_CREAT | os.O_WRONLY, 0o666))
    for name in ("pts", "shm", "mqueue"):
        os.mkdir(os.path.join(dev, name), 0o755)
    pts = os.path.join(dev, "pts")
    opts = "newinstance,ptmxmode=0666,mode=0620"
    try:
        kernel.mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, opts + ",gid=5")
    except OSError:  # gid 5 (tty) is not mapped under a single-id map
        kernel.mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, opts)
    kernel.mount(
        "shm",
        os.path.join(dev, "shm"),
        "tmpfs",
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        f"mode=1777,size={shm_size}" if shm_size else "mode=1777,size=65536k",
    )
    kernel.mount("mqueue", os.path.join(dev, "mqueue"), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name, target in DEV_LINKS.items():
        os.symlink(target, os.path.join(dev, name))


def mount_sys(root: str, kernel: Syscalls = syscalls) -> None:
    """A read-only /sys: a fresh sysfs (allowed as we own the net namespace), else a bind."""
    target = _mountpoint(root, "/sys")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY
    try:
        kernel.mount("sysfs", target, "sysfs", flags)
    except OSError:
        # Recursive: /sys carries submounts that a user namespace may only bind together.
        kernel.mount("/sys", target, None, MS_BIND | MS_REC)
        remount_readonly(target, kernel=kernel)


def mount_user(
    root: str,
    mounts: Sequence[BindMount | TmpfsMount],
    sources: Sequence[str | None],
    kernel: Syscalls = syscalls,
) -> None:
    """The caller's bind and tmpfs mounts; ``sources`` are the bind sources' fd links."""

    def mountpoint(mount: BindMount | TmpfsMount, directory: bool = True) -> str:
        try:
            return _mountpoint(root, mount.target, directory)
        except RuntimeError_ as exc:
            raise _inside_bind(exc, mount.target, mounts) from None

    for mount, source in zip(mounts, sources, strict=True):
        if isinstance(mount, TmpfsMount):
            target = mountpoint(mount)
            opts = f"mode={mount.mode:o}" + (f",size={mount.size}" if mount.size else "")
            kernel.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, opts)
            continue
        assert source is not None
        target = mountpoint(mount, directory=os.path.isdir(source))
        kernel.mount(source, target, None, MS_BIND | MS_REC)
        if mount.readonly:
            remount_readonly(target, kernel=kernel)


def _inside_bind(
    exc: RuntimeError_, path: str, mounts: Sequence[BindMount | TmpfsMount]
) -> RuntimeError_:
    """``exc`` with a hint naming the host directory to create ``path`` in, when
    ``path`` lies in a host directory bind-mounted above it (compose's ``./app:/app``
    with ``- /app/node_modules``), which container root may not write."""
    parents = [
        m
        for m in mounts
        if isinstance(m, BindMount)
        and m.target != path
        and path.startswith(m.target.rstrip("/") + "/")
    ]
    if not parents:
        return exc
    parent = max(parents, key=lambda m: len(m.target))
    host = os.path.join(parent.source, path[len(parent.target.rstrip("/")) + 1 :])
    return RuntimeError_(
        f"{exc.message}: it is inside {parent.target}, the host directory {parent.source}",
        hint=f"create {host} on the host (container root cannot), or mount it elsewhere",
    )


def masked_paths(root: str) -> list[str]:
    """:data:`MASKED_PATHS` and each CPU's ``thermal_throttle`` in the container's /sys."""
    try:
        names = os.listdir(secure_join(root, CPU_DIR))
    except OSError:
        names = []
    cpus = sorted(int(name[3:]) for name in names if name[:3] == "cpu" and name[3:].isdigit())
    return [*MASKED_PATHS, *(f"{CPU_DIR}/cpu{n}/{CPU_MASKED}" for n in cpus)]


def mask_paths(root: str, kernel: Syscalls = syscalls) -> None:
    """Docker's masked paths (hidden) and read-only paths (remounted read-only)."""
    for path in masked_paths(root):
        target = secure_join(root, path)
        if not os.path.exists(target):
            continue
        if os.path.isdir(target):
            kernel.mount("tmpfs", target, "tmpfs", MS_RDONLY, "size=0")
        else:
            kernel.mount("/dev/null", target, None, MS_BIND)
    for path in READONLY_PATHS:
        target = secure_join(root, path)
        if os.path.exists(target):
            kernel.mount(target, target, None, MS_BIND | MS_REC)
            remount_readonly(target, kernel=kernel)


def mount_console(tty: int, kernel: Syscalls = syscalls) -> None:
    """Bind the terminal ``tty`` (from the container's devpts) on ``/dev/console``, after
    pivot_root: the runtime spec's default devices include it when there is a terminal
    (runc's ``mountConsole``)."""
    kernel.mount(f"/proc/self/fd/{tty}", "/dev/console", None, MS_BIND)


def pivot(readonly: bool, kernel: Syscalls = syscalls) -> None:
    """Make :data:`ROOT` the root and detach the old one (``pivot_root(".", ".")``).

    pivot_root(2) stacks the old root on top of the new one when both are "."; a lazy
    unmount of "." then drops it, so no directory is needed inside a read-only image.
    """
    kernel.chdir(ROOT)
    kernel.pivot_root(".", ".")
    kernel.umount(".", MNT_DETACH)
    kernel.chdir("/")
    if readonly:
        remount_readonly("/", kernel=kernel)


def build(
    config: ContainerConfig,
    layers: Sequence[str],
    upper: str | None,
    work: str | None,
    bind_sources: Sequence[str | None],
    kernel: Syscalls = syscalls,
) -> None:
    """Every mount of the container, the hostname and loopback, then pivot_root.

    Mounts, pivot_root and the other kernel calls go through ``kernel``
    (:mod:`envkit.host.syscall_seam`); mount points and ``/dev`` entries are created with
    :mod:`os`, relative to the working directory.
    """
    mount_root(config, layers, upper, work, kernel)
    # Relative to the private tmpfs (the cwd): the absolute path may cross directories
    # that container root, an unprivileged id, cannot search (a 0700 ENVKIT_HOME).
    root = ROOT
    mount_proc(root, kernel)
    set_sysctls(root, config.sysctls)
    mount_dev(root, kernel, console=config.tty, shm_size=config.shm_size)
    mount_sys(root, kernel)
    mount_user(root, config.mounts, bind_sources, kernel)
    mask_paths(root, kernel)
    kernel.sethostname(config.hostname)
    if not config.host_network:
        kernel.link_up("lo")
    pivot(config.readonly_root or upper is None, kernel)
