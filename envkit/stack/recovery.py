"""After ``kill -9`` of a stack's supervisor: what its services are doing, and whether a
new supervisor can take them over.

A killed supervisor leaves ``state.json`` as it last wrote it. :func:`as_seen` corrects
it for display (``stack ps``): each service whose container still runs is ``running``,
each whose container is gone is ``exited (supervisor lost)``, its exit code unknown
(the container was not a child of the process that looks). :func:`survivors` lists the
containers still running: when there are any, ``up`` starts a new supervisor that adopts
them (:meth:`envkit.stack.supervisor.Supervisor.start` with ``previous``) instead of
removing what the old one left, and :func:`plan` says what it does with each service.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence

from envkit.records import Record, field
from envkit.runtime import state as rs
from envkit.stack import state as ss

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.stack.policy import RestartManager

#: How ``stack ps`` shows a container that exited while no supervisor watched it.
LOST = "exited (supervisor lost)"


def survivors(record: ss.StackState) -> dict[str, str]:
    """Service -> container id of the containers of ``record`` that still run."""
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


class Plan(Record):
    """What a new supervisor does with each service of the state a lost one left."""

    #: Running, unchanged: held as they are.
    adopt: list[str] = field(default_factory=list)
    #: Running containers that go: their service changed or left the stack.
    discard: list[str] = field(default_factory=list)
    #: Services to start (new, changed, never started, or due a restart).
    start: list[str] = field(default_factory=list)
    #: Stopped by the user, and staying so.
    stopped: list[str] = field(default_factory=list)
    #: Exited while no supervisor watched: exited, exit code unknown.
    lost: list[str] = field(default_factory=list)
    #: Exited under the old supervisor, with a code, and not due a restart.
    exited: list[str] = field(default_factory=list)


def plan(
    previous: ss.StackState,
    order: Sequence[str],
    keys: Mapping[str, str],
    restarts: Mapping[str, RestartManager],
    running: Collection[str],
) -> Plan:
    """Docker's daemon restart for a stack: ``previous`` is the lost supervisor's state,
    ``order`` the services now (in start order) with their recreate ``keys`` and restart
    managers, ``running`` the services of ``previous`` whose container still runs.

    A running container of an unchanged service is adopted. One whose container exited
    unobserved is lost, and started again if its policy says so (an unknown exit counts
    as a failure). One the user stopped stays stopped unless its policy is ``always``.
    New, changed and never-started services start; running containers of changed
    services and of services no longer in the stack are discarded.
    """
    out = Plan()
    for name in order:
        old = previous.services.get(name)
        if old is None:
            out.start.append(name)
            continue
        same = old.spec_key == keys[name]
        if name in running:
            (out.adopt if same else out.discard).append(name)
            if not same:
                out.start.append(name)
        elif not same:
            out.start.append(name)
        elif old.status == "stopped":
            manager = restarts[name]
            (out.start if manager.policy.mode == "always" else out.stopped).append(name)
        elif not old.container:
            out.start.append(name)
        elif old.status == "exited" and old.exit_code is not None:
            out.exited.append(name)
        else:
            out.lost.append(name)
            if restarts[name].on_exit(None, ran_for=0.0) is not None:
                out.start.append(name)
    out.discard += [n for n in previous.services if n not in order and n in running]
    return out
