"""The process that holds a stack: starts its services in order, restarts them per
policy, runs their health checks, and tears everything down.

One :class:`Supervisor` runs per stack: in the foreground ``envkit up`` process, or in a
detached process of its own (``up -d`` and ``stack.up()``, :func:`start_detached`). Its
containers are attached to it (they die with it), so a killed supervisor leaves nothing
running; ``down`` or the next ``up`` removes what it left on disk
(:func:`envkit.stack.cleanup.remove_leftovers`).

Each container is started by a thread of its own, which then waits for it: the runtime
ties a container's life to the thread that forked it, so that thread lives exactly as
long as the container. Services whose dependencies are ready are started side by side,
but the runtime's part of each start (fork, id maps, network attach) one at a time.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from envkit.errors import EnvkitError, RuntimeError_
from envkit.plugins import notify
from envkit.runtime.config import BindMount, TmpfsMount
from envkit.runtime.state import alive, process_start, wait_gone
from envkit.spec import Service, Stack
from envkit.stack import health, readiness, secrets, volumes
from envkit.stack import state as ss
from envkit.stack.limits import STOP_GRACE, UP_TIMEOUT
from envkit.stack.policy import STABLE_AFTER, RestartPolicy, backoff

if TYPE_CHECKING:
    from envkit.containers import Container, RunOptions
    from envkit.stack.control import Server


class DependencyError(RuntimeError_):
    """A service that others depend on did not become ready; ``up`` fails with it."""


@dataclass
class _Job:
    """Work a control request hands to the main thread (which orders starts and stops)."""

    run: Callable[[], dict[str, object]]
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, object] = field(default_factory=dict)
    error: EnvkitError | None = None


@dataclass
class _Launch:
    """A container start under way in the thread that will hold the container."""

    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


@dataclass
class _Instance:
    """One container of a service, as the supervisor holds it."""

    container: Container
    started: float
    #: The thread that started the container and waits for it (it ends after it).
    keeper: threading.Thread
    pump: threading.Thread
    tracker: health.HealthTracker | None = None
    exited: bool = False
    started_at: str = ""
    #: The named volumes its backends mounted for it; unmounted when it is reaped.
    mounted: list[volumes.Attached] = field(default_factory=list)
    #: Set once plugins heard that it started.
    announced: threading.Event = field(default_factory=threading.Event)
    #: Being stopped for good: its keeper removes it as soon as it is gone.
    discarded: bool = False
    removed: bool = False


@dataclass
class _Service:
    spec: Service
    policy: RestartPolicy
    instance: _Instance | None = None
    restart_at: float | None = None
    quick_exits: int = 0
    health_thread: threading.Thread | None = None
    #: Stopped by ``envkit stop``: no restart until ``start``.
    stopped: bool = False
    #: The start under way or last made.
    launch: _Launch | None = None


class Supervisor:
    """Holds the containers of ``stack``'s services ``names`` (in start order).

    ``images`` maps each service to the image (id or reference) to run. ``owner``
    (pid, start time) makes the stack stop when that process is gone (``stack.up()``).
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
    ) -> None:
        self.stack = stack
        self.images = dict(images)
        self.owner = owner
        self.timeout = timeout
        self.stop_grace = stop_grace
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
        self._services = {
            n: _Service(stack[n], RestartPolicy.parse(stack[n].restart)) for n in names
        }
        self._lock = threading.RLock()
        self._events: queue.Queue[Callable[[], None] | _Job] = queue.Queue()
        self._deferred: list[_Job] = []
        self._stopping = threading.Event()
        #: Held while a start attaches, seeds and chowns volumes and secrets (two
        #: services may share a named volume that is seeded on first use).
        self._files_lock = threading.Lock()
        #: Held around the runtime's part of a start. Its monitor process never execs,
        #: so it keeps every fd it inherits: forked while another start has its pipes
        #: open, it would hold their write ends, and that start would wait forever for
        #: the end of file it reads up to.
        self._spawn_lock = threading.Lock()
        self._started_any = False
        self._created_volumes: list[str] = []
        self._created_networks: list[str] = []
        self._server: Server | None = None
        self._image_users: dict[tuple[str, str | None], tuple[int, int, tuple[str, ...]]] = {}

    # -- the life of a stack -----------------------------------------------------------

    def start(self) -> None:
        """Create the stack's resources and start its services, each as soon as what it
        depends on is ready (independent ones at once); return when every service is
        ready. On any failure everything started is torn down and the error raised."""
        try:
            self.state.claim()
            self.state.save()
            self._serve()
            self._prepare_resources(self.state.order)
            self._start_all(self.state.order, time.monotonic() + self.timeout)
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
        from envkit.stack import cleanup

        cleanup.remove_networks(self._created_networks or self.state.networks)
        secrets.remove(self.state.secrets_dir)
        if failed and self._created_volumes:
            volumes.remove(self._volume_pairs(self._created_volumes))
        volumes.remove_transient(self.state.volumes)
        if self._server is not None:
            self._server.close()
        for job in self._drain_jobs():
            job.error = RuntimeError_(f"stack {self.stack.name} is stopping")
            job.done.set()
        cleanup.remove_state_dir(self.state.name)

    # -- resources ---------------------------------------------------------------------

    def _serve(self) -> None:
        from envkit.stack.control import Server

        self._server = Server(self.state.control_path, self._answer)
        self._server.start()

    def _prepare_resources(self, names: Sequence[str]) -> None:
        """Secret files, volumes and networks that services ``names`` need and that do
        not exist yet."""
        stack = self.stack
        subset = _only(stack, names)
        if any(stack[n].secrets for n in names):
            if not self.state.secrets_dir:
                self.state.secrets_dir = str(secrets.private_dir(stack.name))
                self.state.save()
            secrets.write_all(subset, Path(self.state.secrets_dir), missing_only=True)
        self._created_volumes += volumes.ensure(subset)
        entries = [f"{v.backend}:{volumes.full_name(stack.name, v)}" for v in subset.volumes]
        self.state.volumes = sorted({*self.state.volumes, *entries})
        from envkit.stack import networking

        self.state.networks = sorted({*self.state.networks, *networking.names(stack, names)})
        self.state.save()
        self._created_networks += networking.create(stack, names)

    def _volume_pairs(self, names: Sequence[str]) -> list[tuple[str, str]]:
        pairs = [tuple(v.split(":", 1)) for v in self.state.volumes]
        return [(b, n) for b, n in pairs if n in names]

    # -- services ----------------------------------------------------------------------

    def _start_all(self, names: Sequence[str], deadline: float) -> None:
        """Start services ``names``: each once what it depends on is ready, those whose
        dependencies are ready side by side; then wait until all are ready."""
        pending = [n for n in self.state.order if n in names]
        launched: dict[str, _Launch] = {}
        try:
            while pending or not all(lh.done.is_set() for lh in launched.values()):
                self._collect(launched)
                for name in list(pending):
                    if self._dependencies_ready(name, pending):
                        launched[name] = self._launch(name)
                        pending.remove(name)
                        if not self._started_any:
                            # The first start runs alone: it imports the start path and
                            # brings up the network's daemons, and no other thread should
                            # be half-way through an import or a lock when those fork.
                            launched[name].done.wait()
                            self._collect(launched)
                if pending or not all(lh.done.is_set() for lh in launched.values()):
                    waiting = next(iter([*pending, *launched]), "")
                    self._pause(deadline, waiting)
        finally:
            for launch in launched.values():
                launch.done.wait()
        self._collect(launched)
        for name in self.state.order:
            svc = self._services[name]
            if (
                name in names
                and svc.instance is not None
                and (self._has_check(name) or svc.spec.ready)
            ):
                while (problem := self._readiness(name, "healthy")) == "":
                    self._pause(deadline, name)
                if problem:
                    raise self._not_ready(name, "healthy", problem, None)
        for name in names:
            instance = self._services[name].instance
            if instance is not None:
                instance.announced.wait()

    def _collect(self, launched: dict[str, _Launch]) -> None:
        """Report the starts of ``launched`` that finished (and forget them); raise the
        error of one that failed."""
        for name, launch in list(launched.items()):
            if not launch.done.is_set():
                continue
            del launched[name]
            if launch.error is not None:
                raise launch.error
            self._started_any = True
            self._report(f"{name}: started")

    def _dependencies_ready(self, name: str, pending: Sequence[str]) -> bool:
        """Whether everything ``name`` depends on is ready; raises when one never will be."""
        for target, condition in self._services[name].spec.depends_on:
            if target in pending:
                return False
            problem = self._readiness(target, condition)
            if problem:
                raise self._not_ready(target, condition, problem, name)
            if problem == "":
                return False
        return True

    def _pause(self, deadline: float, waiting_for: str) -> None:
        if time.monotonic() >= deadline:
            raise self._not_ready(waiting_for, "ready", f"not ready after {self.timeout:g} s", None)
        if self._stopping.is_set():
            raise RuntimeError_(f"stack {self.stack.name}: interrupted while starting")
        # Starts, exits, health and readiness changes wake it; the timeout only bounds
        # how late a signal's stop request is seen.
        self._tick(0.1, jobs=False)

    def _launch(self, name: str) -> _Launch:
        """Start a container of service ``name`` in a thread of its own, which then
        waits for it (the runtime kills a container when the thread that forked it
        ends); see :attr:`_Launch.done` for when it is up."""
        launch = _Launch()
        self._services[name].launch = launch
        threading.Thread(
            target=self._keep, args=(name, launch), name=f"envkit-svc-{name}", daemon=True
        ).start()
        return launch

    def _keep(self, name: str, launch: _Launch) -> None:
        """The life of one container of ``name``: start it, tell plugins, wait for it to
        be gone, then hand its exit to the main thread."""
        try:
            instance = self._start_service(name)
        except BaseException as exc:
            launch.error = exc
            return
        finally:
            launch.done.set()
            self._wake()
        try:
            notify.service_started(self.stack.name, name)
        finally:
            instance.announced.set()
        container = instance.container
        start = process_start(container.pid) or 0
        while not wait_gone(container.pid, start, 3600):
            pass
        code = container.wait()
        volumes.detach(instance.mounted)
        with self._lock:
            discarded = instance.discarded
        if discarded:
            self._remove(instance)  # here, beside the other keepers, not one by one later
        notify.service_stopped(self.stack.name, name, code)
        self._events.put(lambda: self._on_exit(name, instance, code))

    def _wake(self) -> None:
        """Wake the main thread now (a start ended, a health or readiness changed)."""
        self._events.put(lambda: None)

    def _start_service(self, name: str) -> _Instance:
        """Start a container of service ``name`` (in the thread that will hold it)."""
        from envkit.runtime import logs as runtime_logs
        from envkit.stack import networking
        from envkit.stack.logs import RotatingLogWriter

        svc = self._services[name]
        spec, stack = svc.spec, self.stack
        image = self.images[name]
        key = (image, spec.user)
        if key not in self._image_users:
            self._image_users[key] = _image_user(image, spec.user)
        uid, gid, layers = self._image_users[key]
        with self._files_lock:
            attached = volumes.attach(
                stack, spec.volumes, f"{stack.name}-{name}-{os.urandom(6).hex()}"
            )
        try:
            mounts = volumes.runtime_mounts(stack, spec.volumes, attached)
            # Seeding and chowning may fork (as root of a user namespace): with the
            # spawn lock, like every fork a start makes.
            with self._files_lock, self._spawn_lock:
                volumes.seed(attached, layers)
                volumes.hand_to(attached, uid, gid)
                if spec.secrets:
                    directory = Path(self.state.secrets_dir)
                    mounts += secrets.mounts(spec.secrets, directory)
                    secrets.hand_to(spec.secrets, directory, uid, gid)
            log_path = self.state.log_path(name)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            started_at = runtime_logs.timestamp()
            with self._spawn_lock:
                container, out_r, err_r = self._run(name, image, mounts)
        except BaseException:
            with self._files_lock:
                volumes.detach(attached)
            raise
        writer = RotatingLogWriter(str(log_path))

        def pump() -> None:
            try:
                runtime_logs.pump(writer, {out_r: "stdout", err_r: "stderr"})
            finally:
                writer.close()

        pump_thread = threading.Thread(target=pump, name=f"envkit-log-{name}", daemon=True)
        pump_thread.start()
        tracker = None
        if self._has_check(name):
            assert spec.healthcheck is not None
            tracker = health.HealthTracker(spec.healthcheck, time.monotonic())
        instance = _Instance(
            container,
            time.monotonic(),
            threading.current_thread(),
            pump_thread,
            tracker,
            False,
            started_at,
            attached,
        )
        with self._lock:
            svc.instance, svc.stopped = instance, False
            record = self.state.services[name]
            record.container, record.container_name = container.id, container.name
            record.status, record.exit_code = "running", None
            record.health = health.STARTING if tracker else ""
            record.health_output = ""
            record.ready = "waiting" if spec.ready else ""
            record.ready_output = ""
            record.started_at = started_at
            record.ports = networking.describe_ports(container)
            self.state.save()
        if spec.ready:
            threading.Thread(
                target=self._ready_loop,
                args=(name, instance),
                name=f"envkit-ready-{name}",
                daemon=True,
            ).start()
        if tracker is not None and svc.health_thread is None:
            svc.health_thread = threading.Thread(
                target=self._health_loop, args=(name,), name=f"envkit-health-{name}", daemon=True
            )
            svc.health_thread.start()
        return instance

    def _run(
        self, name: str, image: str, mounts: Sequence[BindMount | TmpfsMount]
    ) -> tuple[Container, int, int]:
        """Start service ``name``'s container with its output on two pipes; the
        container and the pipes' read ends."""
        from envkit.containers import RunOptions
        from envkit.stack import environment, networking

        spec, stack = self._services[name].spec, self.stack
        limits = None
        if spec.memory is not None or spec.cpus is not None or spec.pids_limit is not None:
            from envkit.runtime.cgroups import Limits

            limits = Limits.parse(
                None if spec.memory is None else str(spec.memory),
                None if spec.cpus is None else str(spec.cpus),
                None if spec.pids_limit is None else str(spec.pids_limit),
            )
        network = networking.run_options(stack, name)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            options = RunOptions(
                cmd=None if spec.command is None else list(spec.command),
                entrypoint=None if spec.entrypoint is None else list(spec.entrypoint),
                env=environment.service_env(stack, name),
                tmpfs=[t.split(":", 1)[0] for t in spec.tmpfs],
                workdir=spec.workdir,
                user=spec.user,
                hostname=spec.hostname or name,
                read_only=spec.read_only,
                init=spec.init,
                cap_add=spec.cap_add,
                cap_drop=spec.cap_drop,
                name=f"{stack.name}-{name}-1",
                stdio=(null, out_w, err_w),
                limits=limits,
                networks=network["network"],
                network_aliases=network["network_aliases"],
                ports=network["ports"],
            )
            container = _start_container(image, options, mounts)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        return container, out_r, err_r

    def _stop_instances(self, names: Sequence[str]) -> None:
        """SIGTERM the containers of services ``names``, SIGKILL those still there after
        the grace period, and remove them (no restart follows)."""
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
                _signal(instance, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for _, instance in instances:
            instance.keeper.join(max(0.0, deadline - time.monotonic()))
            if instance.keeper.is_alive():
                _signal(instance, signal.SIGKILL)
                instance.keeper.join()
        for _, instance in instances:
            instance.pump.join(5)
            self._remove(instance)

    def _remove(self, instance: _Instance) -> None:
        """Remove ``instance``'s container (once)."""
        with self._lock:
            if instance.removed:
                return
            instance.removed = True
        _remove_container(instance)

    def _has_check(self, name: str) -> bool:
        check = self._services[name].spec.healthcheck
        return check is not None and not check.disabled

    def _tick(self, timeout: float, *, jobs: bool) -> None:
        """Handle one event (waiting up to ``timeout``): a container exit, or a control
        job (kept for later unless ``jobs``); then due restarts and the owner."""
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            if isinstance(event, _Job):
                if jobs:
                    self._do(event)
                else:
                    self._deferred.append(event)
            else:
                event()
        now = time.monotonic()
        for name, svc in self._services.items():
            if svc.restart_at is not None and now >= svc.restart_at and not self._stopping.is_set():
                self._restart(name)
        if self.owner is not None and not alive(*self.owner):
            self.request_stop()

    def _on_exit(self, name: str, instance: _Instance, code: int) -> None:
        svc = self._services.get(name)
        with self._lock:
            instance.exited = True
            if svc is None or svc.instance is not instance:
                return
            record = self.state.services[name]
            record.status, record.exit_code = "exited", code
            if (
                not self._stopping.is_set()
                and not svc.stopped
                and svc.policy.should_restart(code, record.restarts)
            ):
                ran = time.monotonic() - instance.started
                svc.quick_exits = 0 if ran >= STABLE_AFTER else svc.quick_exits
                svc.restart_at = time.monotonic() + backoff(svc.quick_exits)
                svc.quick_exits += 1
                record.status = "restarting"
            self._save_quietly()
        self._report(f"{name}: exited with code {code}")

    def _restart(self, name: str) -> None:
        svc = self._services[name]
        svc.restart_at = None
        old = svc.instance
        if old is not None:
            old.pump.join(5)
            self._remove(old)
        launch = self._launch(name)
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

    # -- control requests --------------------------------------------------------------

    def _answer(
        self, request: dict[str, Any], fds: list[int], conn: socket.socket
    ) -> dict[str, Any] | None:
        """Answer one control request (a thread of the control server)."""
        op = request["op"]
        if op == "ps":
            with self._lock:
                return {"ok": True, "state": asdict(self.state)}
        if op == "logs":
            return self._send_logs(request, conn)
        if op == "exec":
            return self._exec(request, fds)
        if op == "down":
            self.request_stop()
            self._wake()  # the main loop stops now, not at its next tick
            return {"ok": True, "pid": os.getpid()}
        if op in ("stop", "start", "restart"):
            names = self._known([str(n) for n in request.get("services") or []])
            return self._on_main(lambda: self._lifecycle(op, names))
        if op == "replace":
            import base64
            import pickle

            # Same-uid callers only (SO_PEERCRED): they could ptrace this process anyway.
            stack = pickle.loads(base64.b64decode(request["stack"]))
            if not isinstance(stack, Stack) or stack.name != self.stack.name:
                raise EnvkitError(f"replace: not a Stack named {self.stack.name!r}")
            images = {str(k): str(v) for k, v in request["images"].items()}
            names = [str(n) for n in request["services"]]
            return self._on_main(lambda: self._replace(stack, images, names))
        raise EnvkitError(f"unknown request {op!r}")

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
        return {"ok": True, **job.answer}

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
            self._start_all(idle, time.monotonic() + self.timeout)
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
                self._services[name] = _Service(
                    stack[name], RestartPolicy.parse(stack[name].restart)
                )
                self.state.services[name] = ss.ServiceState(
                    image_id=merged[name], spec_key=keys[name]
                )
            self.state.order = order
            self._save_quietly()
        if changed:
            self._prepare_resources(changed)
            self._start_all(changed, time.monotonic() + self.timeout)
        for name in changed:
            self._report(f"{name}: recreated")
        return {"recreated": changed, "removed": removed}

    def _exec(self, request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        from envkit.containers import start_exec

        name = str(request.get("service", ""))
        with self._lock:
            svc = self._services.get(name)
            instance = svc.instance if svc is not None else None
        if instance is None or instance.exited:
            raise EnvkitError(
                f"stack {self.stack.name!r} has no running service {name!r}",
                hint="`envkit ps -p NAME` shows the services",
            )
        if len(fds) != 3:
            raise EnvkitError("exec: expected the caller's stdin, stdout and stderr")
        env = request.get("env") or {}
        process = start_exec(
            instance.container.reload(),
            [str(a) for a in request["cmd"]],
            env={str(k): str(v) for k, v in env.items()},
            workdir=request.get("workdir"),
            user=request.get("user"),
            stdio=(fds[0], fds[1], fds[2]),
        )
        for fd in fds:
            os.close(fd)
        fds.clear()
        code = process.wait()
        return {"ok": True, "exit_code": code, "error": process.error}

    def _send_logs(self, request: dict[str, Any], conn: socket.socket) -> dict[str, Any] | None:
        import io

        from envkit.stack.logs import stream

        names = self._known([str(n) for n in request.get("services") or []])
        if not request.get("follow"):
            buffer = io.StringIO()
            stream(self.stack.name, names, buffer)
            return {"ok": True, "text": buffer.getvalue()}
        out = conn.makefile("w", encoding="utf-8", errors="replace")
        try:
            stream(self.stack.name, names, out, follow=True, stop=self._stopping)
        except OSError:
            pass  # the caller hung up
        finally:
            with contextlib.suppress(OSError):
                out.close()
        return None

    # -- readiness ---------------------------------------------------------------------

    def _readiness(self, name: str, condition: str) -> str | None:
        """``None``: ready; ``""``: not yet; else why it never will be. ``healthy``
        means: the health check (if any) passes and every ``ready`` probe passed."""
        svc = self._services.get(name)
        if svc is None:
            return "it is not part of the stack"
        with self._lock:
            record = self.state.services[name]
            instance = svc.instance
            waiting_restart = svc.restart_at is not None
            launch = svc.launch
        if launch is not None and not launch.done.is_set():
            return ""
        if instance is None:
            return "it was not started" if record.status != "stopped" else "it was stopped"
        if condition == "completed":
            if record.status == "exited":
                return None if record.exit_code == 0 else f"it exited with code {record.exit_code}"
            return ""
        if record.status == "exited" and not waiting_restart:
            return f"it exited with code {record.exit_code}"
        if condition == "started":
            return None
        if not self._has_check(name) and not svc.spec.ready:
            return "it has no health check"
        if record.health == health.UNHEALTHY:
            return "its health check failed"
        if record.ready == "failed":
            return record.ready_output
        done = record.ready in ("", "ready") and record.health in ("", health.HEALTHY)
        return None if done and not instance.exited else ""

    def _ready_loop(self, name: str, instance: _Instance) -> None:
        """Try service ``name``'s ``ready`` probes on ``instance``, in order, until all
        passed or one ran out of time; record the outcome."""
        from envkit.stack.logs import lines_since

        svc = self._services[name]
        path = self.state.log_path(name)
        target = readiness.Target(
            pid=instance.container.pid,
            record=instance.container.reload,
            log_lines=lambda: lines_since(path, instance.started_at),
        )

        def alive() -> bool:
            return not instance.exited and not self._stopping.is_set()

        problem = None
        for probe in svc.spec.ready:
            problem = readiness.wait(probe, target, instance.started, alive)
            if problem is not None:
                break
        with self._lock:
            if svc.instance is not instance or self._stopping.is_set():
                return
            record = self.state.services[name]
            record.ready, record.ready_output = (
                ("ready", "") if problem is None else ("failed", problem)
            )
            self._save_quietly()
        self._wake()
        self._report(f"{name}: {'ready' if problem is None else 'not ready: ' + problem}")

    def _not_ready(
        self, name: str, condition: str, problem: str, waiter: str | None
    ) -> DependencyError:
        from envkit.stack.logs import tail

        record = self.state.services[name]
        who = f"{waiter} depends on {name} being {condition}" if waiter else f"{name} is not ready"
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

    # -- health checks -----------------------------------------------------------------

    def _health_loop(self, name: str) -> None:
        """Run service ``name``'s checks on whatever container it has now."""
        svc = self._services[name]
        check = svc.spec.healthcheck
        assert check is not None
        command = health.argv(check)
        last_instance: _Instance | None = None
        last_run: float | None = None
        while not self._stopping.is_set() and self._services.get(name) is svc:
            with self._lock:
                instance = svc.instance
            if instance is None or instance.exited or instance.tracker is None:
                self._stopping.wait(0.05)
                continue
            if instance is not last_instance:
                last_instance, last_run = instance, None
            due = instance.tracker.next_run(last_run)
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            last_run = time.monotonic()
            record = instance.container.reload()
            ok, output = health.run_once(record, command, check.timeout)
            with self._lock:
                if svc.instance is not instance or instance.exited:
                    continue
                status = instance.tracker.record(ok, output, time.monotonic())
                entry = self.state.services[name]
                changed = entry.health != status
                entry.health, entry.health_output = status, instance.tracker.last_output
                if changed or not ok:
                    self._save_quietly()
            if changed:
                self._wake()  # a start may be waiting for this service's health
                self._report(f"{name}: {status}")

    def _save_quietly(self) -> None:
        """Save the state unless the stack dir is already gone (torn down)."""
        if self.state.dir.exists():
            self.state.save()


def _only(stack: Stack, names: Sequence[str]) -> Stack:
    """``stack`` restricted to services ``names`` (all of them: the stack itself)."""
    if len(names) == len(stack.services):
        return stack
    clone = Stack(stack.name, [stack[n] for n in names])
    return clone.with_base_dir(stack.base_dir) if stack.base_dir else clone


def _start_container(
    image: str, options: RunOptions, mounts: Sequence[BindMount | TmpfsMount]
) -> Container:
    """``envkit.run(image, ...)`` held by this process, with ``mounts`` (volumes first)
    before the ones ``options`` make: ``run``'s ``volumes`` take only binds, and a
    backend's volume may be a sized tmpfs."""
    from envkit import containers

    prepared = containers.prepare(image, options)
    try:
        config = prepared.config.replace(mounts=[*mounts, *prepared.config.mounts])
    except BaseException:
        prepared.abandon()
        raise
    return containers._start_attached(prepared.replace(config))


def _signal(instance: _Instance, sig: int) -> None:
    from contextlib import suppress

    with suppress(EnvkitError, OSError):
        instance.container.kill(sig)


def _remove_container(instance: _Instance) -> None:
    from contextlib import suppress

    from envkit.runtime import state as rs

    container = instance.container
    with suppress(EnvkitError, OSError):
        record = rs.load(container.reload().dir)
        if record is not None:
            rs.remove(record)


def _image_user(image: str, user: str | None) -> tuple[int, int, tuple[str, ...]]:
    """The container uid and gid a service runs as (its ``user`` or the image's), and
    the image's lower dirs (top first)."""
    from envkit.runtime import image_config
    from envkit.store import snapshots
    from envkit.store.layout import Store

    store = Store.default()
    _, manifest = store.image_manifest(store.resolve(image))
    config = store.config(manifest)
    snapshot = snapshots.prepare(store, [d.digest for d in manifest.layers], config.diff_ids)
    who = image_config.resolve_user(
        user if user is not None else str(config.config.get("User") or ""),
        image_config.read_image_file(snapshot.layers, "/etc/passwd"),
        image_config.read_image_file(snapshot.layers, "/etc/group"),
    )
    return who.uid, who.gid, snapshot.layers


# -- detached supervisors ---------------------------------------------------------------


def start_detached(supervisor: Supervisor) -> int:
    """Run ``supervisor`` in a process of its own (double fork, new session); return its
    pid once the stack is up, or raise the error that made ``up`` fail."""
    import json

    from envkit.runtime.detached import run_detached

    report = run_detached(lambda status_w: _daemon(supervisor, status_w)).decode(errors="replace")
    try:
        answer = json.loads(report)
    except ValueError:
        answer = {"error": "the stack supervisor died while starting the stack"}
    if "pid" in answer:
        return int(answer["pid"])
    error_class = DependencyError if answer.get("dependency") else RuntimeError_
    error = error_class(str(answer["error"]), hint=answer.get("hint"))
    code = answer.get("exit_code")
    if isinstance(code, int):  # bad input (a port in use) stays exit 2, as in the foreground
        error.exit_code = code
    raise error


def _daemon(supervisor: Supervisor, status_w: int) -> NoReturn:  # pragma: no cover - child
    import json

    try:
        signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
        try:
            supervisor.start()
        except EnvkitError as exc:
            answer = {
                "error": exc.message,
                "hint": exc.hint,
                "dependency": isinstance(exc, DependencyError),
                "exit_code": exc.exit_code,
            }
            os.write(status_w, json.dumps(answer).encode())
            os._exit(1)
        except BaseException as exc:
            from envkit.settings import storage_error

            home = storage_error(exc) if isinstance(exc, OSError) else None
            if home is not None:
                answer = {"error": home.message, "hint": home.hint, "exit_code": home.exit_code}
                os.write(status_w, json.dumps(answer).encode())
                os._exit(1)
            os.write(status_w, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            os._exit(1)
        os.write(status_w, json.dumps({"pid": os.getpid()}).encode())
        os.close(status_w)
        supervisor.run()
        supervisor.teardown()
    finally:
        os._exit(0)
