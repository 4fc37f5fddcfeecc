"""Start order: each service once what it depends on is ready, independent ones at once.

Pure logic over a :class:`Host` (the supervisor, or a fake in unit tests): the
scheduler asks it what a service depends on, how a service is doing (a
:class:`Snapshot`), to launch one (a :class:`Launch` that completes later) and to wait
for the next event. It never touches a container, a namespace or a file.

Conditions (compose's ``depends_on``): ``started`` (the container runs), ``healthy``
(its health check, if any, passes and each of its ``ready`` probes passed) and
``completed`` (it exited with code 0). :func:`condition` says for one service whether a
condition holds, not yet, or never will, and why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from envkit.errors import RuntimeError_
from envkit.records import Record, Value, field

HEALTHY, UNHEALTHY = "healthy", "unhealthy"
#: Why ``healthy`` never holds for a service with no health check (its own or its
#: image's) and no ``ready`` probe.
NO_HEALTH_CHECK = "it has no health check"


class Launch(Record):
    """A container start under way (in the thread that will hold the container)."""

    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the start done (failed with ``error``)."""
        self.error = error
        self.done.set()


class Snapshot(Value):
    """What the scheduler needs to know of one service at one moment."""

    #: ``created``, ``running``, ``restarting``, ``exited`` or ``stopped``.
    status: str
    exit_code: int | None = None
    #: ``""`` (no check), ``starting``, ``healthy``, ``unhealthy``.
    health: str = ""
    #: ``""`` (no ``ready`` probes), ``waiting``, ``ready``, ``failed``.
    ready: str = ""
    ready_output: str = ""
    #: A start is under way.
    starting: bool = False
    #: It has a container (running or exited, not yet replaced).
    has_container: bool = False
    #: That container is gone.
    container_exited: bool = False
    #: A restart is scheduled.
    restarting: bool = False
    #: It has a health check or ``ready`` probes (``healthy`` is then a real wait).
    checked: bool = False


def condition(service: Snapshot | None, wanted: str) -> str | None:
    """Whether ``service`` meets ``wanted`` (``started``, ``healthy``, ``completed``):
    ``None`` yes, ``""`` not yet, else why it never will."""
    if service is None:
        return "it is not part of the stack"
    if service.starting:
        return ""
    if not service.has_container:
        return "it was stopped" if service.status == "stopped" else "it was not started"
    if wanted == "completed":
        if service.status == "exited":
            code = service.exit_code
            return None if code == 0 else f"it exited with code {code}"
        return ""
    if service.status == "exited" and not service.restarting:
        return f"it exited with code {service.exit_code}"
    if wanted == "started":
        return None
    if not service.checked:
        return NO_HEALTH_CHECK
    if service.health == UNHEALTHY:
        return "its health check failed"
    if service.ready == "failed":
        return service.ready_output
    done = service.ready in ("", "ready") and service.health in ("", HEALTHY)
    return None if done and not service.container_exited else ""


class Host(Protocol):
    """What the scheduler drives: the supervisor (or a fake)."""

    @property
    def stack_name(self) -> str:
        """The stack's name, for messages."""
        ...

    def dependencies(self, name: str) -> Sequence[tuple[str, str]]:
        """``(service, condition)`` pairs service ``name`` waits for."""
        ...

    def snapshot(self, name: str) -> Snapshot | None:
        """How service ``name`` is doing now; ``None``: no such service."""
        ...

    def launch(self, name: str) -> Launch:
        """Start a container of service ``name`` (returns at once)."""
        ...

    def started(self, name: str) -> None:
        """A start of ``name`` succeeded (the scheduler saw it)."""
        ...

    def wait_event(self, timeout: float) -> None:
        """Handle the next event (an exit, a health change, a finished start), waiting
        at most ``timeout`` seconds."""
        ...

    def stopping(self) -> bool:
        """Whether the stack is being stopped (a start in progress gives up)."""
        ...

    def announced(self, name: str) -> None:
        """Wait until plugins heard that ``name`` started."""
        ...

    def not_ready(self, name: str, wanted: str, problem: str, waiter: str | None) -> Exception:
        """The error for service ``name`` that will never be ``wanted``."""
        ...


class Scheduler:
    """Starts services over ``host`` in dependency order (see :meth:`start`)."""

    def __init__(self, host: Host, clock: Callable[[], float] = time.monotonic) -> None:
        self.host = host
        self.clock = clock
        #: The first start of the stack runs alone: it imports the start path and brings
        #: up the network's daemons, and no other thread should be half-way through an
        #: import or a lock when those fork.
        self.started_any = False

    def start(self, order: Sequence[str], names: Sequence[str], timeout: float) -> None:
        """Start services ``names`` (of ``order``, the stack's start order): each once
        what it depends on is ready, those whose dependencies are ready side by side;
        then wait until every one with a health check or ``ready`` probe is ready.
        Raises the error of a failed start, the :meth:`Host.not_ready` error of a
        dependency that will never be ready, or of a service not ready within
        ``timeout`` seconds."""
        deadline = self.clock() + timeout
        pending = [n for n in order if n in names]
        launched: dict[str, Launch] = {}
        try:
            while pending or not _all_done(launched):
                self._collect(launched)
                for name in list(pending):
                    if self._dependencies_ready(name, pending, launched):
                        launched[name] = self.host.launch(name)
                        pending.remove(name)
                        if not self.started_any:
                            launched[name].done.wait()
                            self._collect(launched)
                if pending or not _all_done(launched):
                    waiting = next(iter([*pending, *launched]), "")
                    self._pause(deadline, timeout, waiting)
        finally:
            for launch in launched.values():
                launch.done.wait()
        self._collect(launched)
        for name in order:
            snapshot = self.host.snapshot(name)
            if name not in names or snapshot is None or not snapshot.checked:
                continue
            if not snapshot.has_container:
                continue
            while (problem := condition(self.host.snapshot(name), HEALTHY)) == "":
                self._pause(deadline, timeout, name)
            if problem:
                raise self.host.not_ready(name, HEALTHY, problem, None)
        for name in names:
            self.host.announced(name)

    def _collect(self, launched: dict[str, Launch]) -> None:
        """Report the starts of ``launched`` that finished (and forget them); raise the
        error of one that failed."""
        for name, launch in list(launched.items()):
            if not launch.done.is_set():
                continue
            del launched[name]
            if launch.error is not None:
                raise launch.error
            self.started_any = True
            self.host.started(name)

    def _dependencies_ready(
        self, name: str, pending: Sequence[str], launched: dict[str, Launch]
    ) -> bool:
        """Whether everything ``name`` depends on is ready; raises when one never will be
        (the error of its start, when that failed: the cause, not "it was not started")."""
        for target, wanted in self.host.dependencies(name):
            if target in pending:
                return False
            problem = condition(self.host.snapshot(target), wanted)
            if problem:
                self._collect(launched)
                raise self.host.not_ready(target, wanted, problem, name)
            if problem == "":
                return False
        return True

    def _pause(self, deadline: float, timeout: float, waiting_for: str) -> None:
        if self.clock() >= deadline:
            raise self.host.not_ready(waiting_for, "ready", f"not ready after {timeout:g} s", None)
        if self.host.stopping():
            raise RuntimeError_(f"stack {self.host.stack_name}: interrupted while starting")
        # Starts, exits, health and readiness changes wake it; the timeout only bounds
        # how late a signal's stop request is seen.
        self.host.wait_event(0.1)


def _all_done(launched: dict[str, Launch]) -> bool:
    return all(launch.done.is_set() for launch in launched.values())
