"""Resource limits (``--memory``, ``--cpus``, ``--pids-limit``) through cgroup v2.

Only where the host delegates a writable v2 subtree with the controllers: envkit makes a
child cgroup ``envkit-<id>`` under the parent (``ENVKIT_CGROUP_PARENT``, else the
caller's own cgroup), enables the controllers in the parent's ``cgroup.subtree_control``,
writes ``memory.max``, ``cpu.max`` and ``pids.max``, and the container's monitor moves
itself in before it creates the namespaces, so every process of the container is
limited from the first instruction. The cgroup is removed when the container exits.
Anywhere else a limit is refused with the reason: never ignored silently.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from envkit.errors import RuntimeError_, SpecError
from envkit.records import Value

CPU_PERIOD = 100_000  # microseconds, docker's and the kernel's default period
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
DELEGATION_HINT = (
    "run envkit in a cgroup v2 subtree delegated to you (systemd-run --user -p Delegate=yes "
    "--scope ...), or set ENVKIT_CGROUP_PARENT to such a directory without processes; "
    "or drop the option"
)


class Limits(Value):
    """The limits asked for; ``None``: no limit."""

    memory: int | None = None  #: bytes
    cpus: float | None = None  #: CPUs' worth of time per period
    pids: int | None = None  #: at most this many tasks; -1 unlimited

    @classmethod
    def parse(cls, memory: str | None, cpus: str | None, pids: str | None) -> Limits:
        """Docker's spellings: ``--memory 256m``, ``--cpus 0.5``, ``--pids-limit 100``."""
        return cls(
            memory=None if memory is None else parse_memory(memory),
            cpus=None if cpus is None else _parse_cpus(cpus),
            pids=None if pids is None else _parse_pids(pids),
        )

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.memory, self.cpus, self.pids))

    def options(self) -> list[str]:
        """The CLI options these limits came from (for messages)."""
        names = [("--memory", self.memory), ("--cpus", self.cpus), ("--pids-limit", self.pids)]
        return [flag for flag, value in names if value is not None]

    def controllers(self) -> list[str]:
        """The v2 controllers these limits need."""
        wanted = [("memory", self.memory), ("cpu", self.cpus), ("pids", self.pids)]
        return [name for name, value in wanted if value is not None]

    def files(self) -> dict[str, str]:
        """Interface file -> value to write into the container's cgroup."""
        out = {}
        if self.memory is not None:
            out["memory.max"] = str(self.memory)
            out["memory.swap.max"] = "0"  # docker: --memory without --memory-swap
        if self.cpus is not None:
            out["cpu.max"] = f"{max(1000, round(self.cpus * CPU_PERIOD))} {CPU_PERIOD}"
        if self.pids is not None:
            out["pids.max"] = "max" if self.pids < 0 else str(self.pids)
        return out


def parse_memory(text: str) -> int:
    """``256m``, ``1g``, ``512k``, ``1048576`` -> bytes (1024-based, as docker)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", text.lower())
    if not match:
        raise SpecError("--memory", "expected a size like 256m, 1g or 512k", value=text)
    value = int(float(match.group(1)) * _UNITS[match.group(2)])
    if value < 6 << 20:
        raise SpecError("--memory", "the minimum is 6m (as docker)", value=text)
    return value


def _parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= (os.cpu_count() or 1) * 1024:
        raise SpecError("--cpus", "expected a positive number of CPUs like 0.5 or 2", value=text)
    return value


def _parse_pids(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0 or value < -1:
        raise SpecError("--pids-limit", "expected a positive count, or -1 for none", value=text)
    return value


def own_cgroup(
    proc_cgroup: str = "/proc/self/cgroup", mountinfo: str = "/proc/self/mountinfo"
) -> Path | None:
    """The caller's cgroup v2 directory, or ``None`` without a v2 mount."""
    try:
        with open(proc_cgroup) as f:
            relative = next((ln[3:].strip() for ln in f if ln.startswith("0::")), None)
        with open(mountinfo) as f:
            mounts = [ln.split() for ln in f]
    except OSError:
        return None
    if relative is None:
        return None
    for fields in mounts:
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return Path(fields[4]) / relative.lstrip("/")
    return None


def parent_dir() -> Path | None:
    """Where containers' cgroups go: ``ENVKIT_CGROUP_PARENT`` or the caller's own."""
    configured = os.environ.get("ENVKIT_CGROUP_PARENT")
    return Path(configured) if configured else own_cgroup()


def create(limits: Limits, name: str, parent: Path | None = None) -> str:
    """Make the cgroup ``parent/name`` with ``limits``; its path.

    Raises :class:`SpecError` naming the missing delegation when the parent lacks a
    controller or is not writable.
    """
    parent = parent if parent is not None else parent_dir()
    if parent is None:
        raise _refusal(limits, "this host has no cgroup v2 hierarchy for envkit")
    try:
        available = set((parent / "cgroup.controllers").read_text().split())
    except OSError:
        available = set()
    missing = [c for c in limits.controllers() if c not in available]
    if missing:
        raise _refusal(limits, f"{parent} has no {', '.join(missing)} controller delegated")
    if not (os.access(parent, os.W_OK) and os.access(parent / "cgroup.subtree_control", os.W_OK)):
        raise _refusal(limits, f"{parent} is not writable by this user")
    _enable(parent, limits.controllers())
    path = parent / name
    try:
        path.mkdir()
    except OSError as exc:
        raise RuntimeError_(f"cannot create cgroup {path}: {exc.strerror}") from None
    try:
        for file, value in limits.files().items():
            if file == "memory.swap.max" and not (path / file).exists():
                continue  # no swap accounting on this kernel: nothing to limit
            (path / file).write_text(value)
    except OSError as exc:
        remove(str(path))
        raise RuntimeError_(f"cannot set limits in {path}: {exc.strerror}") from None
    return str(path)


def remove(path: str) -> None:
    """Remove a container's cgroup once its processes are gone (missing is fine)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        import logging  # lazy: a rare warning; logging costs ~3 ms to import

        logging.getLogger("envkit.cgroups").warning("cannot remove cgroup %s: %s", path, exc)


def _enable(parent: Path, controllers: list[str]) -> None:
    control = parent / "cgroup.subtree_control"
    enabled = set(control.read_text().split())
    wanted = [c for c in controllers if c not in enabled]
    if not wanted:
        return
    try:
        control.write_text(" ".join(f"+{c}" for c in wanted))
    except OSError as exc:
        why = exc.strerror
        if exc.errno == errno.EBUSY:
            why = "it holds processes itself (cgroup v2's no-internal-processes rule)"
        raise _refusal(limits_for(wanted), f"cannot enable {wanted} in {parent}: {why}") from None


def limits_for(controllers: list[str]) -> Limits:
    """A :class:`Limits` naming ``controllers`` (for messages)."""
    return Limits(
        memory=0 if "memory" in controllers else None,
        cpus=0.0 if "cpu" in controllers else None,
        pids=0 if "pids" in controllers else None,
    )


def _refusal(limits: Limits, why: str) -> SpecError:
    return SpecError(
        ", ".join(limits.options()),
        f"resource limits need a delegated cgroup v2 subtree and envkit never ignores them "
        f"silently: {why}",
        hint=DELEGATION_HINT,
    )
