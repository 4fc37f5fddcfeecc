"""Kernel parameters of a container's own namespaces (``docker run --sysctl``, compose's
``sysctls``): only those a container's namespaces own, as runc allows them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envkit.errors import SpecError

#: IPC-namespace parameters, by name (runc's validSysctlMap).
IPC = frozenset(
    {
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
    }
)  # fmt: skip
#: Prefixes of namespaced parameters: the IPC namespace's message queues, and the
#: network namespace's (a container's own: envkit gives every container one).
PREFIXES = ("fs.mqueue.", "net.")


def parse(field: str, value: object) -> tuple[tuple[str, str], ...]:
    """``{"net.core.somaxconn": 1024}`` or ``["net.core.somaxconn=1024"]`` as sorted
    (name, value) pairs; a parameter outside the container's namespaces is refused."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for item in value:
            key, sep, setting = str(item).partition("=")
            if not sep:
                raise SpecError(
                    field, "expected NAME=VALUE", value=item, hint="net.core.somaxconn=1024"
                )
            pairs.append((key, setting))
    else:
        raise SpecError(field, "expected a mapping or a list of NAME=VALUE", value=value)
    return tuple(sorted(check(field, key.strip(), setting.strip()) for key, setting in pairs))


def check(field: str, name: str, value: str) -> tuple[str, str]:
    """One parameter, refused unless the container's namespaces own it."""
    parts = name.split(".")
    if not all(p and p not in (".", "..") and "/" not in p for p in parts):
        raise SpecError(field, "not a sysctl name", value=name, hint="e.g. net.core.somaxconn")
    if name not in IPC and not name.startswith(PREFIXES):
        raise SpecError(
            field,
            f"{name} is not a parameter of the container's own namespaces",
            hint="a container may set net.*, fs.mqueue.* and the IPC kernel.msg*/sem/shm* "
            "ones (runc's list); the others are the host's",
        )
    if not value or "\n" in value or "\0" in value:
        raise SpecError(field, f"{name}: a value is one line", value=value)
    return (name, value)
