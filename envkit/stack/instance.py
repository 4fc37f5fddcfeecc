"""One service as the supervisor holds it: its current container, restart policy,
health checks and readiness probes, and the container operations behind them.

The supervisor never starts, signals or removes a container itself: it asks a
:class:`ContainerOps` (:class:`envkit.stack.launcher.Launcher` for real containers, a
fake in unit tests). What happens when a container exits (restart or not, after which
backoff) is :meth:`ServiceRuntime.on_exit`, docker's rules
(:class:`~envkit.stack.policy.RestartManager`); the health status of each check run is
:class:`~envkit.stack.health.HealthTracker`, and :class:`Checks` runs a service's health
checks and ``ready`` probes in threads of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from envkit.records import Record, field
from envkit.stack.health import HealthTracker
from envkit.stack.image_health import effective
from envkit.stack.logs import lines_since
from envkit.stack.policy import RestartManager, RestartPolicy
from envkit.stack.scheduler import Launch, Snapshot

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.spec import Healthcheck, Service, Stack
    from envkit.spec.readiness import Ready
    from envkit.stack.state import ServiceState, StackState


class Handle(Protocol):
    """A running container, as the supervisor uses it."""

    @property
    def id(self) -> str:
        """The container id."""
        ...

    @property
    def name(self) -> str:
        """The container name."""
        ...

    @property
    def pid(self) -> int:
        """The host pid of its pid 1."""
        ...


class Started(Record):
    """What :meth:`ContainerOps.start` gives back: the container and what came with it."""

    container: Handle
    #: When it started (RFC 3339, the log records' format).
    started_at: str
    #: ``127.0.0.1:8000->5000/tcp`` forms of its published ports.
    ports: list[str] = field(default_factory=list)
    #: Copies its output into the service's log; ends after the container.
    pump: threading.Thread | None = None
    #: What its start attached (named volumes): released when it is gone.
    attached: list[Any] = field(default_factory=list)
    #: The signal that stops it, then SIGKILL after the grace period: the service's
    #: ``stop_signal``, else its image's ``StopSignal``, else SIGTERM (docker's order).
    stop_signal: int = 15
    #: The health check its image carries (docker's ``Healthcheck``, or envkit's exact
    #: label): the one it runs when the service has none of its own
    #: (:func:`envkit.stack.image_health.effective`); ``None``: none.
    image_healthcheck: Healthcheck | None = None
    #: Why the image's health check is ignored (it is malformed), or ``""``.
    image_healthcheck_problem: str = ""
    #: ``attached`` as the stack's state records it (:attr:`ServiceState.mounts`).
    mounts: list[list[str]] = field(default_factory=list)


class ContainerOps(Protocol):
    """The container operations of a stack: the one seam between the supervisor's
    logic and the runtime (and the store, networks, volumes and secrets)."""

    def prepare(self, stack: Stack, names: Sequence[str], state: StackState) -> None:
        """Create the secret files, volumes and networks services ``names`` need (and
        record them in ``state``)."""
        ...

    def start(self, stack: Stack, name: str, image: str, state: StackState) -> Started:
        """Start a container of service ``name``, held by the calling thread."""
        ...

    def adopt(
        self, stack: Stack, name: str, container_id: str, state: StackState
    ) -> Started | None:
        """Take over container ``container_id`` of service ``name``, left running by a
        lost supervisor; ``None`` when it is gone."""
        ...

    def forget(self, container_id: str) -> None:
        """Remove the record of container ``container_id`` if it is gone."""
        ...

    def gone(self, container: Handle) -> None:
        """Wait until ``container``'s pid 1 has exited (its exit not collected yet)."""
        ...

    def wait(self, container: Handle) -> int | None:
        """Wait until ``container`` is gone; its exit code (``None``: unknown)."""
        ...

    def signal(self, container: Handle, sig: int) -> None:
        """Send ``sig`` to the container's pid 1 (nothing if it is gone)."""
        ...

    def ignores(self, container: Handle, sig: int) -> bool:
        """Whether the container's pid 1 is seen ignoring ``sig`` now (no handler, not
        blocked, asleep: the kernel drops it), so that waiting for it to work is
        pointless; ``False`` when in doubt or gone."""
        ...

    def release(self, started: Started) -> None:
        """Give back what the start attached (the container is gone)."""
        ...

    def remove(self, container: Handle) -> None:
        """Remove the container's record (it is gone)."""
        ...

    def health_check(self, container: Handle, check: Healthcheck) -> tuple[bool, str]:
        """Run ``check`` once in ``container``: whether it passed, and its output."""
        ...

    def ready_probe(
        self,
        container: Handle,
        probe: Ready,
        log_lines: Callable[[], Iterable[str]],
        started: float,
        alive: Callable[[], bool],
    ) -> str | None:
        """Try ``probe`` until it passes (``None``) or runs out of time (why)."""
        ...

    def hold(
        self,
        held: Sequence[tuple[str, Started]],
        state: StackState,
        listening: int,
        owner: tuple[int, int] | None,
        request: Mapping[str, object],
    ) -> None:
        """Replace this process with the hold program, which keeps the containers
        ``held`` (service, start) until an event makes it resume the supervisor with
        ``request``; returns when it cannot (everything runs as before)."""
        ...

    def teardown(self, state: StackState, failed: bool) -> None:
        """Remove the stack's networks and secret files, the volumes a ``failed`` ``up``
        created and those whose backend keeps no data."""
        ...


class Instance(Record):
    """One container of a service, as the supervisor holds it."""

    started: Started
    #: When it started (monotonic seconds).
    since: float
    #: The thread that started the container and waits for it (it ends after it).
    keeper: threading.Thread | None = None
    tracker: HealthTracker | None = None
    exited: bool = False
    #: Set once plugins heard that it started.
    announced: threading.Event = field(default_factory=threading.Event)
    #: Being stopped for good: its keeper removes it as soon as it is gone.
    discarded: bool = False
    removed: bool = False
    #: Found running by a new supervisor (not its child: no exit code).
    adopted: bool = False

    @property
    def container(self) -> Handle:
        """Its container."""
        return self.started.container


class ServiceRuntime(Record):
    """One service of a running stack: its spec, restart manager and current
    container."""

    spec: Service
    restarts: RestartManager
    instance: Instance | None = None
    #: When the scheduled restart is due (monotonic), or ``None``.
    restart_at: float | None = None
    health_thread: threading.Thread | None = None
    #: Stopped by ``envkit stop``: no restart until ``start``.
    stopped: bool = False
    #: The start under way or last made.
    launch: Launch | None = None
    #: The health check its containers run: its own, else its image's once a start
    #: read it (:meth:`use_image_check`); ``None``: none (or disabled).
    healthcheck: Healthcheck | None = None
    #: A malformed image check was said (in ``up``'s output) already.
    image_check_reported: bool = False

    @classmethod
    def of(cls, spec: Service, restarts: int = 0) -> ServiceRuntime:
        """A service not started yet (``restarts``: the count it had so far)."""
        own = effective(spec.healthcheck, None)
        return cls(
            spec, RestartManager(RestartPolicy.parse(spec.restart), restarts), healthcheck=own
        )

    @property
    def checked(self) -> bool:
        """Whether it has a health check (its own or its image's, not disabled)."""
        return self.healthcheck is not None

    def use_image_check(self, started: Started) -> Healthcheck | None:
        """Take the image's check that ``started`` read (docker's inheritance: the
        service's own check wins, ``["NONE"]`` turns both off); the effective check."""
        self.healthcheck = effective(self.spec.healthcheck, started.image_healthcheck)
        return self.healthcheck

    def on_exit(
        self, instance: Instance, code: int | None, now: float, stopping: bool
    ) -> float | None:
        """``instance`` exited with ``code``: when its restart is due (monotonic), or
        ``None``. Nothing restarts while the stack stops or after the user's ``stop``."""
        instance.exited = True
        if stopping or self.stopped or instance is not self.instance:
            return None
        delay = self.restarts.on_exit(code, now - instance.since)
        self.restart_at = None if delay is None else now + delay
        return self.restart_at

    def snapshot(self, record: ServiceState) -> Snapshot:
        """What the scheduler needs of this service, with its recorded state."""
        launch = self.launch
        return Snapshot(
            status=record.status,
            exit_code=record.exit_code,
            health=record.health,
            ready=record.ready,
            ready_output=record.ready_output,
            starting=launch is not None and not launch.done.is_set(),
            has_container=self.instance is not None,
            container_exited=self.instance is not None and self.instance.exited,
            restarting=self.restart_at is not None,
            checked=self.checked or bool(self.spec.ready),
        )


class Checks:
    """Runs the health checks and ``ready`` probes of a supervisor's services (each
    loop in a thread of its own), recording results in ``state`` under ``lock`` and
    calling ``changed(line)`` (save, wake the main thread, say the line) on a change."""

    def __init__(
        self,
        ops: ContainerOps,
        lock: threading.RLock,
        stopping: threading.Event,
        services: Mapping[str, ServiceRuntime],
        state: StackState,
        changed: Callable[[str], None],
    ) -> None:
        self.ops = ops
        self.lock = lock
        self.stopping = stopping
        self.services = services
        self.state = state
        self.changed = changed

    def ready_probes(self, name: str, svc: ServiceRuntime, instance: Instance) -> None:
        """Try ``svc``'s ``ready`` probes on ``instance``, in order, until all passed or
        one ran out of time; record the outcome (unless the instance was replaced)."""
        path = self.state.log_path(name)

        def alive() -> bool:
            return not instance.exited and not self.stopping.is_set()

        problem = None
        for probe in svc.spec.ready:
            problem = self.ops.ready_probe(
                instance.container,
                probe,
                lambda: lines_since(path, instance.started.started_at),
                instance.since,
                alive,
            )
            if problem is not None:
                break
        with self.lock:
            if svc.instance is not instance or self.stopping.is_set():
                return
            record = self.state.services[name]
            record.ready, record.ready_output = (
                ("ready", "") if problem is None else ("failed", problem)
            )
        self.changed(f"{name}: {'ready' if problem is None else 'not ready: ' + problem}")

    def health_checks(self, name: str, svc: ServiceRuntime) -> None:
        """Run ``svc``'s health check on whatever container it has now, on the
        schedule of its tracker, until the stack stops or the service is replaced."""
        last_instance: Instance | None = None
        last_run: float | None = None
        while not self.stopping.is_set() and self.services.get(name) is svc:
            with self.lock:
                instance = svc.instance
            if instance is None or instance.exited or instance.tracker is None:
                self.stopping.wait(0.05)
                continue
            if instance is not last_instance:
                last_instance, last_run = instance, None
            due = instance.tracker.next_run(last_run, time.monotonic())
            if self.stopping.wait(max(0.0, due - time.monotonic())):
                return
            last_run = time.monotonic()
            ok, output = self.ops.health_check(instance.container, instance.tracker.check)
            with self.lock:
                if svc.instance is not instance or instance.exited:
                    continue
                status = instance.tracker.record(ok, output, last_run)
                entry = self.state.services[name]
                changed = entry.health != status
                entry.health, entry.health_output = status, instance.tracker.last_output
                if not changed and not ok and self.state.dir.exists():
                    self.state.save()  # the last failing output, for `ps`
            if changed:
                self.changed(f"{name}: {status}")
