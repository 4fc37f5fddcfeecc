"""The process that holds a stack: starts its services in order, restarts them per
policy, runs their health checks and readiness probes, answers control requests, and
tears everything down.

One :class:`Supervisor` runs per stack: in the foreground ``envkit up`` process, or in a
detached process of its own (``up -d`` and ``stack.up()``,
:func:`envkit.stack.daemon.start_detached`). It is the glue of parts that each do one
thing (docs/dev/stack.md):

- :mod:`envkit.stack.scheduler`: start order and ``depends_on`` conditions;
- :mod:`envkit.stack.instance`: a service's container, restart policy (docker's rules),
  health and readiness, over :class:`~envkit.stack.instance.ContainerOps`;
- :mod:`envkit.stack.launcher`: the real container operations;
- :mod:`envkit.stack.control`: the socket, typed requests and the dispatch table;
- :mod:`envkit.stack.daemon`: the detached start.

Its containers are attached to it (they die with it), so a killed supervisor leaves
nothing running; ``down`` or the next ``up`` removes what it left on disk
(:func:`envkit.stack.cleanup.remove_leftovers`).

Threads: the main thread (:meth:`Supervisor.run`) orders starts, stops and restarts and
runs control jobs; each container has a keeper thread that started it and waits for
it, and a log pump; each checked service a health thread, each ``ready`` start a probe
thread; the control server a thread a connection.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from envkit.container.execute import start_exec
from envkit.container.handle import Container
from envkit.errors import BadControlRequestError, DependencyError, EnvkitError, RuntimeError_
from envkit.plugins import notify
from envkit.records import Record, asdict, field
from envkit.runtime.state import IGNORE_POLL, alive
from envkit.spec import Stack
from envkit.stack import cleanup, control, health, specjson
from envkit.stack import state as ss
from envkit.stack.instance import Checks, ContainerOps, Instance, ServiceRuntime, Started
from envkit.stack.launcher import Launcher
from envkit.stack.limits import STOP_GRACE, UP_TIMEOUT
from envkit.stack.logs import stream, tail
from envkit.stack.scheduler import NO_HEALTH_CHECK, Launch, Scheduler, Snapshot

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.stack.control import Call

__all__ = ["Supervisor"]


class _Job(Record):
    """Work a control request hands to the main thread (which orders starts and stops)."""

    run: Callable[[], dict[str, object]]
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, object] = field(default_factory=dict)
    error: EnvkitError | None = None


class Supervisor:
    """Holds the containers of ``stack``'s services ``names`` (in start order).

    ``images`` maps each service to the image (id or reference) to run. ``owner``
    (pid, start time) makes the stack stop when that process is gone (``stack.up()``).
    ``ops`` does the container operations (:class:`~envkit.stack.launcher.Launcher`
    unless given; unit tests give a fake).
    """

    def __init__(
        self,
        stack: Stack,
        images: Mapping[str, str],
        names: Sequence[str],
        *,
        file: str = "",
        owner: tuple[int, int] | None = None,
        timeout: float = UP_TIMEOUT,
        stop_grace: float = STOP_GRACE,
        report: Callable[[str], None] | None = None,
        ops: ContainerOps | None = None,
        previous: ss.StackState | None = None,
        hold_after: float | None = None,
        listening: int | None = None,
    ) -> None:
        if ops is None:
            ops = Launcher()
        self.stack = stack
        self.images = dict(images)
        self.owner = owner
        self.timeout = timeout
        self.stop_grace = stop_grace
        #: ``down -t``'s grace, which overrides every service's own (compose's rule)
        self.grace_given: float | None = None
        self.ops = ops
        self._report = report or (lambda _line: None)
        self.state = ss.StackState(
            name=stack.name,
            file=file,
            order=list(names),
            services={
                n: ss.ServiceState(
                    image_id=self.images[n], spec_key=ss.spec_key(stack, n, self.images[n])
                )
                for n in names
            },
        )
        self._services = {n: ServiceRuntime.of(stack[n]) for n in names}
        self._lock = threading.RLock()
        self._events: queue.Queue[Callable[[], None] | _Job] = queue.Queue()
        self._deferred: list[_Job] = []
        self._stopping = threading.Event()
        self._scheduler = Scheduler(self)
        self._server: control.Server | None = None
        #: The state a lost supervisor left: :meth:`start` takes its containers over.
        self.previous = previous
        #: Idle seconds before :meth:`run` holds (``None``: never; :mod:`holding`).
        self.hold_after = hold_after
        #: The control socket kept through a hold phase, served again.
        self._listening = listening
        #: Held by a keeper from collecting its container's exit status until the
        #: main thread has it: a hold must not begin in between (the exit is lost).
        self._reap_gate = threading.Lock()
        self._quiet_since = time.monotonic()
        self._checks = Checks(
            self.ops, self._lock, self._stopping, self._services, self.state, self._changed
        )

    # -- the life of a stack -----------------------------------------------------------

    def start(self) -> None:
        """Create the stack's resources and start its services, each as soon as what it
        depends on is ready (independent ones at once); return when every service is
        ready. On any failure everything started is torn down and the error raised."""
        try:
            self.state.claim()
            resuming = self._listening is not None
            if resuming:
                # Back from the hold phase: the stack was up all along, and `ls` reads
                # the record while this process takes it over again.
                self.state.status = ss.RUNNING
            else:
                self.state.save()
                self._serve()
            names = self.state.order
            if self.previous is not None:
                # First, before anything else could reap them as orphans.
                names = self._take_over(self.previous)
            if resuming:
                # After the take-over: a request that woke the hold waits in the backlog
                # until the state it asks about is whole again.
                self._serve()
            self.ops.prepare(self.stack, self.state.order, self.state)
            self._scheduler.start(self.state.order, names, self.timeout)
            with self._lock:
                self.state.status = ss.RUNNING
                self.state.save()
        except BaseException as exc:
            if isinstance(exc, EnvkitError):
                with self._lock:
                    self.state.status, self.state.error = ss.FAILED, exc.message
            self.teardown(failed=True)
            raise

    def run(self) -> None:
        """Keep the stack running (restarts, health, control requests) until
        :meth:`request_stop`."""
        while not self._stopping.is_set():
            while self._deferred:
                self._do(self._deferred.pop(0))
            self._tick(0.2, jobs=True)
            if self._hold_due():
                self._try_hold()

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler or another thread)."""
        self._stopping.set()

    def teardown(self, *, failed: bool = False) -> None:
        """Stop every container, then remove them, the stack's networks, its secret files
        and its state. Volumes stay, except those created by a failed ``up`` and those
        whose backend does not keep data (``tmpfs``)."""
        self._stopping.set()
        with self._lock:
            self.state.status = ss.STOPPING
            self._save_quietly()
        self._stop_instances(list(self._services))
        for svc in self._services.values():
            if svc.health_thread is not None:
                svc.health_thread.join(5)
        self.ops.teardown(self.state, failed)
        if self._server is not None:
            self._server.close()
        for job in self._drain_jobs():
            job.error = RuntimeError_(f"stack {self.stack.name} is stopping")
            job.done.set()
        cleanup.remove_state_dir(self.state.name)

    def _serve(self) -> None:
        table = control.Dispatcher()
        table.on(control.Ps, self._on_ps)
        table.on(control.Logs, self._on_logs)
        table.on(control.Exec, self._on_exec)
        table.on(control.Down, self._on_down)
        for kind in (control.Stop, control.Start, control.Restart):
            table.on(kind, self._on_lifecycle)
        table.on(control.Replace, self._on_replace)
        self._server = control.Server(self.state.control_path, table, self._listening)
        self._server.start()

    # -- taking over from a lost supervisor ----------------------------------------------

    def _take_over(self, previous: ss.StackState) -> list[str]:
        """Adopt the containers ``previous`` (the state of a supervisor that was killed)
        left running, as docker's daemon does at its restart; the services to start.

        A running container of an unchanged service is adopted (watched through a
        pidfd; its exit code will be unknown). A service whose container exited while
        no supervisor watched is recorded as exited with no code and restarted as its
        policy says (an unknown exit counts as a failure); one the user had stopped
        stays stopped unless its policy is ``always``. Changed and new services are
        (re)started; containers of services no longer in the stack are removed.
        """
        from envkit.stack import recovery  # lazy: only a take-over; one module less held

        with self._lock:
            self.state.created = previous.created
            self.state.secrets_dir = self.state.secrets_dir or previous.secrets_dir
            self.state.networks = sorted({*self.state.networks, *previous.networks})
            self.state.volumes = sorted({*self.state.volumes, *previous.volumes})
            for name in self.state.order:
                if name in previous.services:
                    count = previous.services[name].restarts
                    self._services[name].restarts.count = count
                    self.state.services[name].restarts = count
                    backoff = previous.services[name].backoff
                    self._services[name].restarts.delay = backoff
                    self.state.services[name].backoff = backoff
                    # What its volumes' backends mounted: released when it is gone.
                    self.state.services[name].mounts = previous.services[name].mounts
            self.state.save()
        running: dict[str, Started] = {}
        for name, old in previous.services.items():
            if not old.container:
                continue
            started = self.ops.adopt(self.stack, name, old.container, self.state)
            if started is None:
                self.ops.forget(old.container)
            else:
                running[name] = started
        keys = {n: self.state.services[n].spec_key for n in self.state.order}
        managers = {n: self._services[n].restarts for n in self.state.order}
        plan = recovery.plan(previous, self.state.order, keys, managers, running)
        for name in plan.adopt:
            self._adopt(name, running[name], previous.services[name])
            self._report(f"{name}: re-adopted (container {running[name].container.name})")
        for name in plan.discard:
            self._discard(running[name], self.grace(name))
        with self._lock:
            for name in plan.stopped:
                self._services[name].stopped = True
                self.state.services[name].status = "stopped"
            for name in plan.exited:
                old, record = previous.services[name], self.state.services[name]
                record.status, record.exit_code = old.status, old.exit_code
            for name in plan.lost:
                record = self.state.services[name]
                record.status, record.exit_code = "exited", None
            self._save_quietly()
        for name in plan.lost:
            self._report(f"{name}: exited while its supervisor was lost")
        return plan.start

    def _adopt(self, name: str, started: Started, old: ss.ServiceState) -> None:
        """Hold ``started`` (a container found running) as service ``name``'s."""
        svc = self._services[name]
        started.started_at, started.ports = old.started_at, list(old.ports)
        tracker = self._tracker(name, svc, started)
        instance = Instance(started, _monotonic_of(old.started_at), None, tracker, adopted=True)
        instance.announced.set()  # plugins heard of its start from the lost supervisor
        instance.keeper = threading.Thread(
            target=self._watch_adopted,
            args=(name, instance),
            name=f"envkit-svc-{name}",
            daemon=True,
        )
        with self._lock:
            svc.instance = instance
            self._record_start(name, instance)
            if old.ready == "ready":
                self.state.services[name].ready = "ready"
                self.state.save()
        instance.keeper.start()
        self._watch(name, instance, probes=old.ready != "ready")

    def _watch_adopted(self, name: str, instance: Instance) -> None:
        self._collect(name, instance)

    def grace(self, name: str) -> float:
        """Seconds between service ``name``'s stop signal and SIGKILL: ``down -t``'s,
        else the service's ``stop_grace_period``, else the default."""
        if self.grace_given is not None:
            return self.grace_given
        own = self.stack[name].stop_grace_period if name in self.stack else None
        return self.stop_grace if own is None else own

    def longest_grace(self) -> float:
        """The longest :meth:`grace` of the stack's services (what a ``down`` waits)."""
        return max([self.grace(s.name) for s in self.stack.services], default=self.stop_grace)

    def _discard(self, started: Started, grace: float) -> None:
        """Stop and remove an adopted container that is not wanted any more."""
        gone = threading.Event()

        def watch() -> None:
            self.ops.wait(started.container)
            gone.set()

        threading.Thread(target=watch, name="envkit-discard", daemon=True).start()
        self.ops.signal(started.container, started.stop_signal)
        if not gone.wait(grace):
            self.ops.signal(started.container, signal.SIGKILL)
            gone.wait(10)
        if started.pump is not None:
            started.pump.join(5)
        self.ops.release(started)
        self.ops.remove(started.container)

    # -- the scheduler's host ----------------------------------------------------------

    @property
    def stack_name(self) -> str:
        """The stack's name."""
        return self.stack.name

    def dependencies(self, name: str) -> Sequence[tuple[str, str]]:
        """What service ``name`` waits for."""
        return self._services[name].spec.depends_on

    def snapshot(self, name: str) -> Snapshot | None:
        """How service ``name`` is doing (``None``: not part of the stack)."""
        with self._lock:
            svc = self._services.get(name)
            return None if svc is None else svc.snapshot(self.state.services[name])

    def launch(self, name: str) -> Launch:
        """Start a container of service ``name`` in a thread of its own, which then
        waits for it (the runtime kills a container when the thread that forked it
        ends); see :attr:`Launch.done` for when it is up."""
        launch = Launch()
        self._services[name].launch = launch
        threading.Thread(
            target=self._keep, args=(name, launch), name=f"envkit-svc-{name}", daemon=True
        ).start()
        return launch

    def started(self, name: str) -> None:
        """Say that ``name`` started."""
        self._report(f"{name}: started")

    def wait_event(self, timeout: float) -> None:
        """Handle one event (control jobs wait for the main loop)."""
        self._tick(timeout, jobs=False)

    def stopping(self) -> bool:
        """Whether the stack is being stopped."""
        return self._stopping.is_set()

    def announced(self, name: str) -> None:
        """Wait until plugins heard that ``name``'s container started."""
        instance = self._services[name].instance
        if instance is not None:
            instance.announced.wait()

    def not_ready(
        self, name: str, wanted: str, problem: str, waiter: str | None
    ) -> DependencyError:
        """The error for service ``name`` that will never be ``wanted``: what was seen,
        its last health check output and its last log lines."""
        record = self.state.services[name]
        if problem == NO_HEALTH_CHECK:
            return self._no_health_check(name, wanted, waiter)
        who = f"{waiter} depends on {name} being {wanted}" if waiter else f"{name} is not ready"
        lines = [f"stack {self.stack.name}: {who}, but {problem}"]
        if record.health_output.strip():
            lines.append(f"  last health check output: {record.health_output.strip()[-500:]}")
        if record.ready_output.strip() and record.ready_output != problem:
            lines.append(f"  readiness: {record.ready_output.strip()[-500:]}")
        last = tail(self.state.log_path(name), 10)
        if last:
            lines.append(f"  last log lines of {name}:")
            lines += [f"    {line}" for line in last]
        return DependencyError(
            "\n".join(lines),
            hint="everything started was stopped again; `envkit up` (foreground) shows the logs",
        )

    def _no_health_check(self, name: str, wanted: str, waiter: str | None) -> DependencyError:
        """Compose's error for a ``healthy`` dependency whose container has no health
        check (none of its own, none or a disabled one in its image): bad input, exit 2."""
        record = self.state.services[name]
        container = record.container_name or f"{self.stack.name}-{name}-1"
        who = f"{waiter} depends on {name} being {wanted}: " if waiter else ""
        own = self._services[name].spec.healthcheck
        why = (
            "its healthcheck is disabled"
            if own is not None
            else "it has none of its own and its image has none"
        )
        error = DependencyError(
            f"stack {self.stack.name}: {who}container {container} has no healthcheck "
            f"configured ({why})",
            hint=f"give {name} a healthcheck=Healthcheck(...) or ready=Ready.tcp(...), "
            f'or make {waiter or "the dependent"} wait for "started"',
        )
        error.exit_code = 2
        return error

    # -- containers --------------------------------------------------------------------

    def _keep(self, name: str, launch: Launch) -> None:
        """The life of one container of ``name``: start it, tell plugins, wait for it to
        be gone, then hand its exit to the main thread."""
        try:
            instance = self._start_service(name)
        except BaseException as exc:
            launch.finish(exc)
            return
        finally:
            if not launch.done.is_set():
                launch.finish()
            self._wake()
        try:
            notify.service_started(self.stack.name, name)
        finally:
            instance.announced.set()
        self._collect(name, instance)

    def _collect(self, name: str, instance: Instance) -> None:
        """Wait until ``instance``'s container is gone, then collect its exit and hand
        it to the main thread (behind the reap gate: a hold waits or gives up)."""
        self.ops.gone(instance.container)
        with self._reap_gate:
            self._gone(name, instance, self.ops.wait(instance.container))

    def _gone(self, name: str, instance: Instance, code: int | None) -> None:
        """``instance``'s container is gone: release it, tell plugins, and hand the exit
        to the main thread."""
        self.ops.release(instance.started)
        with self._lock:
            discarded = instance.discarded
        if discarded:
            self._remove(instance)  # here, beside the other keepers, not one by one later
        notify.service_stopped(self.stack.name, name, code)
        self._events.put(lambda: self._on_exit(name, instance, code))

    def _wake(self) -> None:
        """Wake the main thread now (a start ended, a health or readiness changed)."""
        self._events.put(lambda: None)

    def _start_service(self, name: str) -> Instance:
        """Start a container of service ``name`` (in the thread that will hold it)."""
        svc = self._services[name]
        started = self.ops.start(self.stack, name, self.images[name], self.state)
        tracker = self._tracker(name, svc, started)
        instance = Instance(started, time.monotonic(), threading.current_thread(), tracker)
        with self._lock:
            svc.instance, svc.stopped = instance, False
            self._record_start(name, instance)
        self._watch(name, instance)
        return instance

    def _tracker(
        self, name: str, svc: ServiceRuntime, started: Started
    ) -> health.HealthTracker | None:
        """The health tracker of ``started`` (a new container of service ``name``): over
        the service's own check, else its image's (docker's inheritance); ``None`` when
        it has neither. A malformed image check is said once (and not run)."""
        with self._lock:
            check = svc.use_image_check(started)
            problem = started.image_healthcheck_problem
            say = svc.spec.healthcheck is None and problem and not svc.image_check_reported
            if say:
                svc.image_check_reported = True
        if say:
            self._report(f"{name}: the image's health check is ignored: {problem}")
        return None if check is None else health.HealthTracker(check, time.monotonic())

    def _record_start(self, name: str, instance: Instance) -> None:
        spec, started = self._services[name].spec, instance.started
        record = self.state.services[name]
        record.container, record.container_name = started.container.id, started.container.name
        record.status, record.exit_code = "running", None
        record.health = health.STARTING if instance.tracker else ""
        record.health_output = ""
        record.ready = "waiting" if spec.ready else ""
        record.ready_output = ""
        record.started_at = started.started_at
        record.ports = list(started.ports)
        record.mounts = [list(m) for m in started.mounts]
        self.state.save()

    def _watch(self, name: str, instance: Instance, *, probes: bool = True) -> None:
        """Start the readiness probes of ``instance`` (unless not ``probes``: they
        passed already) and the service's health thread."""
        svc = self._services[name]
        if svc.spec.ready and probes:
            threading.Thread(
                target=self._checks.ready_probes,
                args=(name, svc, instance),
                name=f"envkit-ready-{name}",
                daemon=True,
            ).start()
        if instance.tracker is not None and svc.health_thread is None:
            svc.health_thread = threading.Thread(
                target=self._checks.health_checks,
                args=(name, svc),
                name=f"envkit-health-{name}",
                daemon=True,
            )
            svc.health_thread.start()

    def _stop_instances(self, names: Sequence[str]) -> None:
        """Send the containers of services ``names`` their stop signal (SIGTERM unless the
        service or its image says otherwise), SIGKILL those still there after the grace
        period, and remove them (no restart follows)."""
        for name in names:
            launch = self._services[name].launch
            if launch is not None:
                launch.done.wait()  # a container being started is stopped once it runs
        with self._lock:
            instances = [(n, s.instance) for n in names if (s := self._services[n]).instance]
            for name, instance in instances:
                self._services[name].restart_at = None
                instance.discarded = True
        for _, instance in instances:
            if not instance.exited:
                self.ops.signal(instance.container, instance.started.stop_signal)
        begun = time.monotonic()
        for name, instance in instances:
            if instance.keeper is None:
                continue
            deadline = begun + self.grace(name)
            # Looked at again during the wait, as envkit stop does: a busy pid 1 (a shell
            # between two commands) was not asleep when the signal went, and a signal the
            # kernel dropped never ends it.
            while True:
                left = deadline - time.monotonic()
                instance.keeper.join(max(0.0, min(left, IGNORE_POLL)))
                if not instance.keeper.is_alive():
                    break
                sig = instance.started.stop_signal
                if left <= IGNORE_POLL or self.ops.ignores(instance.container, sig):
                    self.ops.signal(instance.container, signal.SIGKILL)
                    instance.keeper.join()
                    break
        for _, instance in instances:
            if instance.started.pump is not None:
                instance.started.pump.join(5)
            self._remove(instance)

    def _remove(self, instance: Instance) -> None:
        """Remove ``instance``'s container (once)."""
        with self._lock:
            if instance.removed:
                return
            instance.removed = True
        self.ops.remove(instance.container)

    def _tick(self, timeout: float, *, jobs: bool) -> None:
        """Handle one event (waiting up to ``timeout``): a container exit, or a control
        job (kept for later unless ``jobs``); then due restarts and the owner."""
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self._quiet_since = time.monotonic()
            if isinstance(event, _Job):
                if jobs:
                    self._do(event)
                else:
                    self._deferred.append(event)
            else:
                event()
        now = time.monotonic()
        for name, svc in list(self._services.items()):
            if svc.restart_at is not None and now >= svc.restart_at and not self._stopping.is_set():
                self._restart(name)
        if self.owner is not None and not alive(*self.owner):
            self.request_stop()

    def _on_exit(self, name: str, instance: Instance, code: int | None) -> None:
        svc = self._services.get(name)
        with self._lock:
            instance.exited = True
            if svc is None or svc.instance is not instance:
                return
            record = self.state.services[name]
            record.status, record.exit_code = "exited", code
            due = svc.on_exit(instance, code, time.monotonic(), self._stopping.is_set())
            record.backoff = svc.restarts.delay
            if due is not None:
                record.status = "restarting"
            self._save_quietly()
        if code is None:
            self._report(f"{name}: exited (code unknown: it was adopted, not a child)")
        else:
            self._report(f"{name}: exited with code {code}")

    def _restart(self, name: str) -> None:
        svc = self._services[name]
        svc.restart_at = None
        old = svc.instance
        if old is not None:
            if old.started.pump is not None:
                old.started.pump.join(5)
            self._remove(old)
        launch = self.launch(name)
        launch.done.wait()
        if isinstance(launch.error, EnvkitError):
            with self._lock:
                self.state.services[name].status = "exited"
                self.state.services[name].health_output = launch.error.message
                self._save_quietly()
            self._report(f"{name}: restart failed: {launch.error.message}")
            return
        if launch.error is not None:
            raise launch.error
        with self._lock:
            self.state.services[name].restarts += 1
            self._save_quietly()
        self._report(f"{name}: restarted")

    # -- the hold phase ----------------------------------------------------------------

    def _hold_due(self) -> bool:
        """Whether the stack has been quiet for :attr:`hold_after` seconds."""
        if self.hold_after is None or self._stopping.is_set():
            return False
        return time.monotonic() - self._quiet_since >= self.hold_after

    def _holdable(self) -> list[tuple[str, Instance]] | None:
        """The running containers when the stack is idle (nothing under way or due),
        else ``None``."""
        with self._lock:
            if self.state.status != ss.RUNNING or self._deferred or not self._events.empty():
                return None
            held = []
            for name, svc in self._services.items():
                if svc.restart_at is not None or svc.health_thread is not None:
                    return None
                if svc.launch is not None and not svc.launch.done.is_set():
                    return None
                instance = svc.instance
                if instance is None or instance.exited:
                    continue
                if instance.tracker is not None or not instance.announced.is_set():
                    return None
                if self.state.services[name].ready == "waiting":
                    return None
                held.append((name, instance))
            return held

    def _try_hold(self) -> None:
        """Become the hold program if the stack is idle (:mod:`envkit.stack.holding`);
        back here, the next try comes after another quiet period."""
        self._quiet_since = time.monotonic()
        server = self._server
        if server is None or self._holdable() is None:
            return
        if not self._reap_gate.acquire(blocking=False):
            return
        try:
            if not server.pause():
                return
            try:
                held = self._holdable()  # again: an exit may have come meanwhile
                if held is not None:
                    from envkit.stack.daemon import request_of  # lazy: a cycle at import

                    request = request_of(
                        self.stack,
                        self.images,
                        self.state.order,
                        file=self.state.file,
                        owner=self.owner,
                        timeout=self.timeout,
                        previous=None,
                    )
                    # A SIGTERM from here on stays pending through the exec; one that came
                    # before has run its handler by the check below.
                    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
                    try:
                        if not self._stopping.is_set():
                            self.ops.hold(
                                [(n, i.started) for n, i in held],
                                self.state,
                                server.listening_fd(),
                                self.owner,
                                request,
                            )
                    finally:
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            finally:
                server.start()
        finally:
            self._reap_gate.release()

    # -- control requests --------------------------------------------------------------

    def _on_ps(self, request: control.Ps, call: Call) -> dict[str, Any]:
        with self._lock:
            return {"state": asdict(self.state)}

    def _on_down(self, request: control.Down, call: Call) -> dict[str, Any]:
        if request.grace is not None:
            self.stop_grace = self.grace_given = request.grace
        self.request_stop()
        self._wake()  # the main loop stops now, not at its next tick
        return {"pid": os.getpid(), "grace": self.longest_grace()}

    def _on_lifecycle(self, request: control.Stop, call: Call) -> dict[str, Any]:
        names = self._known(request.services)
        return self._on_main(lambda: self._lifecycle(request.op, names))

    def _on_replace(self, request: control.Replace, call: Call) -> dict[str, Any]:
        stack = specjson.decode_stack(request.stack, self.stack.name)
        images, names = dict(request.images), list(request.services)
        missing = [n for n in stack.start_order() if n not in images and n not in self.images]
        if missing:
            raise BadControlRequestError(f"replace: no image for service {missing[0]!r}")
        return self._on_main(lambda: self._replace(stack, images, names))

    def _on_exec(self, request: control.Exec, call: Call) -> dict[str, Any]:
        with self._lock:
            svc = self._services.get(request.service)
            instance = svc.instance if svc is not None else None
        if instance is None or instance.exited:
            raise EnvkitError(
                f"stack {self.stack.name!r} has no running service {request.service!r}",
                hint="`envkit ps -p NAME` shows the services",
            )
        if len(call.fds) != 3:
            raise EnvkitError("exec: expected the caller's stdin, stdout and stderr")
        container = instance.container
        assert isinstance(container, Container)
        process = start_exec(
            container.reload(),
            list(request.cmd),
            env=dict(request.env),
            workdir=request.workdir,
            user=request.user,
            stdio=(call.fds[0], call.fds[1], call.fds[2]),
        )
        for fd in call.fds:
            os.close(fd)
        call.fds.clear()
        code = process.wait()
        return {"exit_code": code, "error": process.error}

    def _on_logs(self, request: control.Logs, call: Call) -> dict[str, Any] | None:
        names = self._known(request.services)
        if not request.follow:
            buffer = io.StringIO()
            stream(self.stack.name, names, buffer)
            return {"text": buffer.getvalue()}
        out = call.conn.makefile("w", encoding="utf-8", errors="replace")
        try:
            stream(
                self.stack.name,
                names,
                out,
                follow=True,
                stop=self._stopping,
                gone=lambda: control.hung_up(call.conn),
            )
        except OSError:
            pass  # the caller hung up
        finally:
            with contextlib.suppress(OSError):
                out.close()
        return None

    def _known(self, names: Sequence[str]) -> list[str]:
        for name in names:
            if name not in self._services:
                raise EnvkitError(
                    f"stack {self.stack.name!r} has no service {name!r}",
                    hint="services: " + ", ".join(self.state.order),
                )
        return [n for n in self.state.order if n in names] if names else list(self.state.order)

    def _on_main(self, work: Callable[[], dict[str, object]]) -> dict[str, Any]:
        job = _Job(work)
        self._events.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return dict(job.answer)

    def _do(self, job: _Job) -> None:
        try:
            job.answer = job.run()
        except EnvkitError as exc:
            job.error = exc
        except Exception as exc:  # the supervisor keeps running; the caller learns why
            job.error = RuntimeError_(f"{type(exc).__name__}: {exc}")
        finally:
            job.done.set()

    def _drain_jobs(self) -> list[_Job]:
        found = list(self._deferred)
        self._deferred.clear()
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return found
            if isinstance(event, _Job):
                found.append(event)

    def _lifecycle(self, op: str, names: Sequence[str]) -> dict[str, object]:
        """``stop``, ``start`` or ``restart`` services ``names`` (main thread)."""
        if op in ("stop", "restart"):
            with self._lock:
                for name in names:
                    self._services[name].stopped = True
            self._stop_instances(names)
            with self._lock:
                for name in names:
                    svc, record = self._services[name], self.state.services[name]
                    svc.instance = None
                    record.status, record.container, record.container_name = "stopped", "", ""
                    record.health = record.ready = ""
                    record.ports = []
                self._save_quietly()
            for name in names:
                self._report(f"{name}: stopped")
        if op in ("start", "restart"):
            idle = [n for n in names if self._services[n].instance is None]
            with self._lock:
                for name in idle:
                    # A manual start resets the restart count, as `docker start` does.
                    self._services[name].restarts.reset()
                    self.state.services[name].restarts = 0
                    self.state.services[name].backoff = 0.0
            self._scheduler.start(self.state.order, idle, self.timeout)
        return {"services": list(names)}

    def _replace(
        self, stack: Stack, images: Mapping[str, str], selected: Sequence[str]
    ) -> dict[str, object]:
        """Bring the stack to ``stack``: services whose spec or image changed (or that
        are new) are recreated, those no longer in it removed, the others left running."""
        keep = [n for n in self.state.order if n in stack]
        wanted = set(selected) | set(keep)
        order = [n for n in stack.start_order() if n in wanted]
        merged = {**self.images, **images}
        keys = {n: ss.spec_key(stack, n, merged[n]) for n in order}
        changed = [
            n
            for n in order
            if n not in self.state.services or self.state.services[n].spec_key != keys[n]
        ]
        removed = [n for n in self.state.order if n not in stack]
        self._stop_instances([n for n in [*changed, *removed] if n in self._services])
        with self._lock:
            for name in removed:
                del self._services[name], self.state.services[name]
            self.stack, self.images = stack, merged
            for name in changed:
                self._services[name] = ServiceRuntime.of(stack[name])
                self.state.services[name] = ss.ServiceState(
                    image_id=merged[name], spec_key=keys[name]
                )
            self.state.order = order
            self._save_quietly()
        if changed:
            self.ops.prepare(stack, changed, self.state)
            self._scheduler.start(self.state.order, changed, self.timeout)
        for name in changed:
            self._report(f"{name}: recreated")
        return {"recreated": changed, "removed": removed}

    def _changed(self, line: str) -> None:
        """A health or readiness status changed: save, wake the main thread (a start may
        wait for it), say ``line``."""
        with self._lock:
            self._save_quietly()
        self._wake()
        self._report(line)

    def _save_quietly(self) -> None:
        """Save the state unless the stack dir is already gone (torn down)."""
        if self.state.dir.exists():
            self.state.save()


def _monotonic_of(started_at: str) -> float:
    """The monotonic time of wall-clock ``started_at`` (RFC 3339, a container's start
    as the state records it): how long an adopted container ran counts from its start,
    not from its adoption. Now when it cannot be read."""
    from envkit.store.timestamps import parse_created  # lazy: only a take-over

    when = parse_created(started_at)
    now = time.monotonic()
    if when is None:
        return now
    return now - max(0.0, time.time() - when.timestamp())
