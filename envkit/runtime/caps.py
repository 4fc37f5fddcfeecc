"""Linux capabilities: reduce a container process to docker's default set.

Used in the container's command process just before exec, while it is still root of its
user namespace (so it holds every capability there and CAP_SETPCAP for the bounding set).
"""

from __future__ import annotations

from envkit.errors import SpecError
from envkit.host import syscalls
from envkit.host.prctl import PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

    from envkit.host.syscall_seam import Syscalls

NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
CAP = {name: number for number, name in enumerate(NAMES)}

#: Docker's default capabilities (moby oci/caps/defaults.go) without NET_RAW, as podman
#: 4 ships them: raw sockets let a container forge packets on its network.
DEFAULT = frozenset(
    CAP[name]
    for name in (
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    )
)


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def limit_bounding_set(keep: frozenset[int], last: int, kernel: Syscalls = syscalls) -> None:
    """Drop every capability not in ``keep`` from the bounding set, and clear ambient."""
    for cap in range(last + 1):
        if cap not in keep:
            kernel.prctl(PR_CAPBSET_DROP, cap)
    kernel.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def parse_mask(hex_mask: str) -> frozenset[int]:
    """The capability numbers of a ``CapEff:``-style hex mask from /proc/PID/status."""
    value = int(hex_mask, 16)
    return frozenset(bit for bit in range(64) if value >> bit & 1)


def resolve(add: Sequence[str] = (), drop: Sequence[str] = ()) -> frozenset[int]:
    """docker's ``--cap-add`` / ``--cap-drop``: :data:`DEFAULT` with ``drop`` removed,
    then ``add`` added. Names with or without ``CAP_``, any case; ``ALL`` means every
    capability (drops first, as docker applies them)."""

    def numbers(option: str, names: Sequence[str]) -> set[int]:
        found: set[int] = set()
        for raw in names:
            name = canonical(raw)[4:]
            if name == "ALL":
                found.update(CAP.values())
            elif name in CAP:
                found.add(CAP[name])
            else:
                raise SpecError(
                    option,
                    "unknown capability",
                    value=raw,
                    hint="use a name from capabilities(7), e.g. NET_ADMIN or CAP_SYS_PTRACE",
                )
        return found

    return frozenset((set(DEFAULT) - numbers("cap_drop", drop)) | numbers("cap_add", add))


def canonical(name: str) -> str:
    """A capability name as the kernel headers and Docker's profile spell it:
    ``sys_admin`` -> ``CAP_SYS_ADMIN``."""
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def names(numbers: frozenset[int]) -> list[str]:
    """``CAP_*`` names of capability numbers, sorted (as docker inspect shows them)."""
    return sorted(f"CAP_{NAMES[n]}" for n in numbers)


def seccomp_caps(numbers: frozenset[int] | None) -> frozenset[str] | None:
    """The capability set to choose a seccomp filter by (``None``: the default set)."""
    if numbers is None or numbers == DEFAULT:
        return None
    return frozenset(names(numbers))
