"""What Docker, runc and the OCI runtime spec say a container's set-up is, as data.

Facts carried from the references (no code), each with where it came from:

- ``DOCKER_MOUNTS``, ``DOCKER_MASKED_PATHS``, ``DOCKER_THERMAL_THROTTLE``,
  ``DOCKER_READONLY_PATHS``: moby/moby ``daemon/pkg/oci/defaults.go`` at b985e2313a
  (2026-08-23), ``DefaultLinuxSpec()`` and ``defaultLinuxMaskedPaths``.
- ``MOUNT_OPTION_FLAGS``: runc ``libcontainer/specconv/spec_linux.go`` at 76d9cf5da5
  (2026-08-19), the option -> ``MS_*`` table of ``parseMountOptions``.
- ``OCI_DEFAULT_DEVICES``: opencontainers/runtime-spec ``config-linux.md``, "Default
  Devices" (``/dev/console`` only with a terminal; ``/dev/ptmx`` a link to ``pts/ptmx``).
- ``RUNC_DEV_SYMLINKS``: runc ``libcontainer/rootfs_linux.go`` at 76d9cf5da5,
  ``setupDevSymlinks`` (``/dev/core`` only when ``/proc/kcore`` exists).
- ``PROC_ENTRIES``, ``SYS_ENTRIES``: the kinds (file or directory, ``/`` at the end) of
  those paths in a Linux 6.x procfs and sysfs, for the fake kernel to create on mount.
"""

from __future__ import annotations

from envkit.host.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY

MS_STRICTATIME = 1 << 24

#: runc parseMountOptions: the options that are mount flags (the others are data).
MOUNT_OPTION_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "strictatime": MS_STRICTATIME,
}

#: Docker's DefaultLinuxSpec mounts: (destination, type, source, options).
DOCKER_MOUNTS = (
    ("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    ("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
    ),
    ("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ("/sys/fs/cgroup", "cgroup", "cgroup", ("ro", "nosuid", "noexec", "nodev")),
    ("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    ("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777")),
)

#: Docker's defaultLinuxMaskedPaths, in its order.
DOCKER_MASKED_PATHS = (
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
#: Also masked by Docker, for every possible CPU whose directory has it
#: (GHSA-6fw5-f8r9-fgfm): ``/sys/devices/system/cpu/cpu%d/thermal_throttle``.
DOCKER_THERMAL_THROTTLE = "/sys/devices/system/cpu/cpu{}/thermal_throttle"

#: Docker's DefaultLinuxSpec ReadonlyPaths.
DOCKER_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: The runtime spec's default devices (without /dev/console: no terminal here).
OCI_DEFAULT_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

#: runc setupDevSymlinks: link -> target.
RUNC_DEV_SYMLINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "core": "/proc/kcore",
}

#: What a fresh procfs holds of the paths above (directories end in "/").
PROC_ENTRIES = (
    "acpi/",
    "asound/",
    "interrupts",
    "kcore",
    "keys",
    "latency_stats",
    "sched_debug",
    "scsi/",
    "timer_list",
    "timer_stats",
    "bus/",
    "fs/",
    "irq/",
    "sys/",
    "sysrq-trigger",
)
#: What a fresh sysfs holds of them, on a two-CPU machine with thermal throttling.
SYS_ENTRIES = (
    "devices/virtual/powercap/",
    "firmware/",
    "devices/system/cpu/cpu0/thermal_throttle/",
    "devices/system/cpu/cpu1/thermal_throttle/",
    "devices/system/cpu/cpufreq/",
    "fs/cgroup/",
)


def root_init_steps(err_w: int) -> list[str]:
    """What pid 1 does last, as container root, from its session to the exec (runc's
    standard_init_linux.go order): credentials before no_new_privs, the seccomp filter
    last before execve. ``err_w``: the error pipe's write end, the one fd kept open."""
    return [
        "setsid",  # a session of its own: never the caller's terminal
        "drop bounding capabilities",  # needs CAP_SETPCAP: before the user changes
        "clear ambient capabilities",
        "setgroups []",
        "setresgid 0 0 0",
        "setresuid 0 0 0",
        "capset",
        "no_new_privs",
        "chdir /",
        "not dumpable",  # a credential change resets both
        "die with the parent",
        f"close fds but {sorted({0, 1, 2, err_w})}",
        "seccomp filter",  # last before exec
        "execve /app",
    ]
