"""The processes of a container, for ``envkit top``: read from ``/proc``.

The members of a container are its init's descendants (``/proc/<pid>/task/*/children``)
plus every process in the init's pid namespace (``exec`` sessions are not children of
init); a process whose namespace link the caller may not read is found only as a
descendant.
"""

from __future__ import annotations

import os

from envkit.records import Value


class Process(Value):
    """One process: its host pid, its pid inside the container, owner and command."""

    pid: int
    container_pid: int
    uid: int
    command: str


def processes(init_pid: int) -> list[Process]:
    """The processes of the container whose init is host pid ``init_pid``, by pid."""
    members = _descendants(init_pid) | _same_pid_ns(init_pid)
    found = (_describe(pid) for pid in sorted(members))
    return [p for p in found if p is not None]


def _descendants(root: int) -> set[int]:
    seen: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        seen.add(pid)
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                continue
    return seen


def _same_pid_ns(init_pid: int) -> set[int]:
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return set()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                found.add(int(entry))
        except OSError:
            continue
    return found


def _describe(pid: int) -> Process | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None  # it exited meanwhile
    ns_pids = status.get("NSpid", "").split()
    command = " ".join(argv) or f"[{status.get('Name', '?').strip()}]"
    return Process(
        pid=pid,
        container_pid=int(ns_pids[-1]) if ns_pids else pid,
        uid=int(status.get("Uid", "0").split()[0]),
        command=command,
    )
