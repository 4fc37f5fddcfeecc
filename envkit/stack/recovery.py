"""After ``kill -9`` of a stack's supervisor: what its services are doing, and whether a
new supervisor can take them over.

A killed supervisor leaves ``state.json`` as it last wrote it. :func:`as_seen` corrects
it for display (``stack ps``): each service whose container still runs is ``running``,
each whose container is gone is ``exited (supervisor lost)``, its exit code unknown
(the container was not a child of the process that looks). :func:`survivors` lists the
containers still running: when there are any, ``up`` starts a new supervisor that adopts
them (:meth:`envkit.stack.supervisor.Supervisor.start` with ``previous``) instead of
removing what the old one left.
"""

from __future__ import annotations

import copy

from envkit.stack import state as ss

#: How ``stack ps`` shows a container that exited while no supervisor watched it.
LOST = "exited (supervisor lost)"


def survivors(record: ss.StackState) -> dict[str, str]:
    """Service -> container id of the containers of ``record`` that still run."""
    from envkit.runtime import state as rs

    found = {}
    for name, service in record.services.items():
        if not service.container:
            continue
        container = rs.load(rs.containers_dir() / service.container)
        if (
            container is not None
            and rs.alive(container.pid, container.pid_start)
            and not _zombie(container.pid)
        ):
            found[name] = service.container
    return found


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (it runs no more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


def as_seen(record: ss.StackState) -> ss.StackState:
    """``record`` of a stack whose supervisor is gone, as its containers are now."""
    if record.supervised:
        return record
    seen = copy.deepcopy(record)
    running = survivors(record)
    for name, service in seen.services.items():
        if name in running:
            service.status = "running"
        elif service.status in ("running", "restarting", "created") and service.container:
            service.status, service.exit_code = "exited", None
            service.health = ""
    return seen


def status_text(service: ss.ServiceState) -> str:
    """The STATUS column of ``stack ps``: ``running``, ``exited (3)``, ``exited
    (supervisor lost)`` (no exit code: nobody saw it exit)..."""
    if service.exit_code is not None:
        return f"{service.status} ({service.exit_code})"
    if service.status == "exited":
        return LOST
    return service.status
