"""The process that holds a stack: starts its services in order, restarts them per
policy, runs their health checks, and tears everything down.

One :class:`Supervisor` runs per stack: in the foreground ``envkit up`` process, or in a
detached process of its own (``up -d`` and ``stack.up()``, :func:`start_detached`). Its
containers are attached to it (they die with it), so a killed supervisor leaves nothing
running; ``down`` or the next ``up`` removes what it left on disk
(:func:`envkit.stack.cleanup.remove_leftovers`). Containers are only ever started from
the supervisor's main thread: the runtime ties a container's life to the thread that
forked it.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from envkit.errors import EnvkitError, RuntimeError_
from envkit.runtime.config import BindMount
from envkit.runtime.state import alive, process_start, wait_gone
from envkit.spec import Service, Stack
from envkit.stack import health, secrets, volumes
from envkit.stack import state as ss
from envkit.stack.policy import STABLE_AFTER, RestartPolicy, backoff

if TYPE_CHECKING:
    from envkit.containers import Container

#: Seconds a service gets between SIGTERM and SIGKILL when the stack stops.
STOP_GRACE = 10.0
#: Default limit for ``up`` to get every service started and healthy.
UP_TIMEOUT = 300.0


class DependencyError(RuntimeError_):
    """A service that others depend on did not become ready; ``up`` fails with it."""


@dataclass
class _Instance:
    """One container of a service, as the supervisor holds it."""

    container: Container
    started: float
    waiter: threading.Thread
    pump: threading.Thread
    tracker: health.HealthTracker | None = None
    exited: bool = False


@dataclass
class _Service:
    spec: Service
    policy: RestartPolicy
    instance: _Instance | None = None
    restart_at: float | None = None
    quick_exits: int = 0
    health_thread: threading.Thread | None = None
    created_volumes: list[str] = field(default_factory=list)


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
            services={n: ss.ServiceState(image_id=self.images[n]) for n in names},
        )
        self._services = {
            n: _Service(stack[n], RestartPolicy.parse(stack[n].restart)) for n in names
        }
        self._lock = threading.RLock()
        self._exits: queue.Queue[tuple[str, _Instance, int]] = queue.Queue()
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()
        self._created_volumes: list[str] = []
        self._created_networks: list[str] = []

    # -- the life of a stack -----------------------------------------------------------

    def start(self) -> None:
        """Create the stack's resources and start its services in order, each once what
        it depends on is ready; return when every service with a health check is
        healthy. On any failure everything started is torn down and the error raised."""
        try:
            self.state.claim()
            self.state.save()
            self._prepare_resources()
            deadline = time.monotonic() + self.timeout
            for name in self.state.order:
                for target, condition in self._services[name].spec.depends_on:
                    self._wait_ready(target, condition, deadline, waiter=name)
                self._start_service(name)
                self._report(f"{name}: started")
            for name in self.state.order:
                if self._services[name].instance is not None and self._has_check(name):
                    self._wait_ready(name, "healthy", deadline, waiter=None)
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
        """Keep the stack running (restarts, health) until :meth:`request_stop`."""
        while not self._stopping.is_set():
            self._tick(0.2)

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler or another thread)."""
        self._stopping.set()

    def teardown(self, *, failed: bool = False) -> None:
        """Stop every container, then remove them, the stack's networks, its secret files
        and its state. Volumes stay, except those created by a failed ``up``."""
        self._stopping.set()
        with self._lock:
            self.state.status = ss.STOPPING
            self._save_quietly()
            instances = [(n, s.instance) for n, s in self._services.items() if s.instance]
        for _, instance in instances:
            if not instance.exited:
                _signal(instance, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for _, instance in instances:
            instance.waiter.join(max(0.0, deadline - time.monotonic()))
            if instance.waiter.is_alive():
                _signal(instance, signal.SIGKILL)
                instance.waiter.join()
        for name, instance in instances:
            instance.pump.join(5)
            _remove_container(instance)
            thread = self._services[name].health_thread
            if thread is not None:
                thread.join(5)
        from envkit.stack import cleanup

        cleanup.remove_networks(self._created_networks or self.state.networks)
        secrets.remove(self.state.secrets_dir)
        if failed and self._created_volumes:
            volumes.remove(self._volume_pairs(self._created_volumes))
        cleanup.remove_state_dir(self.state.name)

    # -- resources ---------------------------------------------------------------------

    def _prepare_resources(self) -> None:
        stack = self.stack
        mounted = [s for n in self.state.order for s in stack[n].secrets]
        if mounted:
            directory = secrets.private_dir(stack.name)
            self.state.secrets_dir = str(directory)
            self.state.save()
            secrets.write_all(_only(stack, self.state.order), directory)
        self._created_volumes = volumes.ensure(_only(stack, self.state.order))
        self.state.volumes = [
            f"{v.backend}:{volumes.full_name(stack.name, v)}"
            for v in _only(stack, self.state.order).volumes
        ]
        from envkit.stack import networking

        self.state.networks = networking.names(stack, self.state.order)
        self.state.save()
        self._created_networks = networking.create(stack, self.state.order)

    def _volume_pairs(self, names: Sequence[str]) -> list[tuple[str, str]]:
        pairs = [tuple(v.split(":", 1)) for v in self.state.volumes]
        return [(b, n) for b, n in pairs if n in names]

    # -- services ----------------------------------------------------------------------

    def _start_service(self, name: str) -> None:
        """Start a container of service ``name`` (main thread only)."""
        from envkit.runtime import logs
        from envkit.stack import networking

        svc = self._services[name]
        spec, stack = svc.spec, self.stack
        image = self.images[name]
        uid, gid = _user_ids(image, spec.user)
        mounts = volumes.mounts(stack, spec.volumes)
        volumes.hand_to(stack, spec.volumes, uid, gid)
        if spec.secrets:
            directory = Path(self.state.secrets_dir)
            mounts += secrets.mounts(spec.secrets, directory)
            secrets.hand_to(spec.secrets, directory, uid, gid)
        log_path = self.state.log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._start_lock:
            container, out_r, err_r = self._run(name, image, mounts)
        writer = logs.LogWriter(str(log_path))

        def pump() -> None:
            try:
                logs.pump(writer, {out_r: "stdout", err_r: "stderr"})
            finally:
                writer.close()

        pump_thread = threading.Thread(target=pump, name=f"envkit-log-{name}", daemon=True)
        pump_thread.start()
        tracker = None
        if self._has_check(name):
            assert spec.healthcheck is not None
            tracker = health.HealthTracker(spec.healthcheck, time.monotonic())
        instance = _Instance(container, time.monotonic(), threading.Thread(), pump_thread, tracker)

        def wait() -> None:
            # Reaped under the start lock: the network's release of an exited container
            # drops this process's holder lease, which a start in progress relies on.
            start = process_start(container.pid) or 0
            while not wait_gone(container.pid, start, 3600):
                pass
            with self._start_lock:
                code = container.wait()
            self._exits.put((name, instance, code))

        instance.waiter = threading.Thread(target=wait, name=f"envkit-wait-{name}", daemon=True)
        with self._lock:
            svc.instance = instance
            record = self.state.services[name]
            record.container, record.container_name = container.id, container.name
            record.status, record.exit_code = "running", None
            record.health = health.STARTING if tracker else ""
            record.health_output = ""
            record.ports = networking.describe_ports(container)
            self.state.save()
        instance.waiter.start()
        if tracker is not None and svc.health_thread is None:
            svc.health_thread = threading.Thread(
                target=self._health_loop, args=(name,), name=f"envkit-health-{name}", daemon=True
            )
            svc.health_thread.start()

    def _run(self, name: str, image: str, mounts: list[BindMount]) -> tuple[Container, int, int]:
        """Start service ``name``'s container with its output on two pipes; the
        container and the pipes' read ends."""
        import envkit.containers as containers
        from envkit.stack import networking

        spec, stack = self._services[name].spec, self.stack
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            container = containers.run(
                image,
                None if spec.command is None else list(spec.command),
                entrypoint=None if spec.entrypoint is None else list(spec.entrypoint),
                env=dict(spec.env),
                volumes=mounts,
                tmpfs=[t.split(":", 1)[0] for t in spec.tmpfs],
                workdir=spec.workdir,
                user=spec.user,
                hostname=spec.hostname or name,
                read_only=spec.read_only,
                name=f"{stack.name}-{name}-1",
                stdio=(null, out_w, err_w),
                memory=None if spec.memory is None else str(spec.memory),
                cpus=spec.cpus,
                pids_limit=spec.pids_limit,
                **networking.run_options(stack, name),
            )
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        return container, out_r, err_r

    def _has_check(self, name: str) -> bool:
        check = self._services[name].spec.healthcheck
        return check is not None and not check.disabled

    def _tick(self, timeout: float) -> None:
        """Handle one container exit (waiting up to ``timeout``), due restarts, the owner."""
        try:
            name, instance, code = self._exits.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self._on_exit(name, instance, code)
        now = time.monotonic()
        for name, svc in self._services.items():
            if svc.restart_at is not None and now >= svc.restart_at and not self._stopping.is_set():
                self._restart(name)
        if self.owner is not None and not alive(*self.owner):
            self.request_stop()

    def _on_exit(self, name: str, instance: _Instance, code: int) -> None:
        svc = self._services[name]
        with self._lock:
            instance.exited = True
            if svc.instance is not instance:
                return
            record = self.state.services[name]
            record.status, record.exit_code = "exited", code
            if not self._stopping.is_set() and svc.policy.should_restart(code, record.restarts):
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
            _remove_container(old)
        try:
            self._start_service(name)
        except EnvkitError as exc:
            with self._lock:
                self.state.services[name].status = "exited"
                self.state.services[name].health_output = exc.message
                self._save_quietly()
            self._report(f"{name}: restart failed: {exc.message}")
            return
        with self._lock:
            self.state.services[name].restarts += 1
            self._save_quietly()
        self._report(f"{name}: restarted")

    # -- readiness ---------------------------------------------------------------------

    def _wait_ready(self, name: str, condition: str, deadline: float, waiter: str | None) -> None:
        """Wait for service ``name`` to be started/healthy/completed; raise
        :class:`DependencyError` when it cannot be any more or the time is up."""
        while True:
            problem = self._readiness(name, condition)
            if problem is None:
                return
            if problem:
                raise self._not_ready(name, condition, problem, waiter)
            if time.monotonic() >= deadline:
                raise self._not_ready(
                    name, condition, f"not {condition} after {self.timeout:g} s", waiter
                )
            if self._stopping.is_set():
                raise RuntimeError_(f"stack {self.stack.name}: interrupted while starting")
            self._tick(0.05)

    def _readiness(self, name: str, condition: str) -> str | None:
        """``None``: ready; ``""``: not yet; else why it never will be."""
        svc = self._services[name]
        with self._lock:
            record = self.state.services[name]
            instance = svc.instance
            waiting_restart = svc.restart_at is not None
        if instance is None:
            return "it was not started"
        if condition == "completed":
            if record.status == "exited":
                return None if record.exit_code == 0 else f"it exited with code {record.exit_code}"
            return ""
        if record.status == "exited" and not waiting_restart:
            return f"it exited with code {record.exit_code}"
        if condition == "started":
            return None
        if not self._has_check(name):
            return "it has no health check"
        if record.health == health.UNHEALTHY:
            return "its health check failed"
        return None if record.health == health.HEALTHY and not instance.exited else ""

    def _not_ready(
        self, name: str, condition: str, problem: str, waiter: str | None
    ) -> DependencyError:
        from envkit.stack.logs import tail

        record = self.state.services[name]
        who = f"{waiter} depends on {name} being {condition}" if waiter else f"{name} is not ready"
        lines = [f"stack {self.stack.name}: {who}, but {problem}"]
        if record.health_output.strip():
            lines.append(f"  last health check output: {record.health_output.strip()[-500:]}")
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
        while not self._stopping.is_set():
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


def _user_ids(image: str, user: str | None) -> tuple[int, int]:
    """The container uid and gid a service runs as (its ``user`` or the image's)."""
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
    return who.uid, who.gid


# -- detached supervisors ---------------------------------------------------------------


def start_detached(supervisor: Supervisor) -> int:
    """Run ``supervisor`` in a process of its own (double fork, new session); return its
    pid once the stack is up, or raise the error that made ``up`` fail."""
    import json

    status_r, status_w = os.pipe()
    middle = os.fork()
    if middle == 0:  # pragma: no cover - runs in the child
        try:
            os.close(status_r)
            os.setsid()
            if os.fork() == 0:
                _daemon(supervisor, status_w)
        finally:
            os._exit(0)
    os.close(status_w)
    os.waitpid(middle, 0)
    with os.fdopen(status_r, "rb") as f:
        report = f.read().decode(errors="replace")
    try:
        answer = json.loads(report)
    except ValueError:
        answer = {"error": "the stack supervisor died while starting the stack"}
    if "pid" in answer:
        return int(answer["pid"])
    error_class = DependencyError if answer.get("dependency") else RuntimeError_
    raise error_class(str(answer["error"]), hint=answer.get("hint"))


def _daemon(supervisor: Supervisor, status_w: int) -> NoReturn:  # pragma: no cover - child
    import json

    try:
        os.chdir("/")
        fd = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(fd, target)
        os.close(fd)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
        try:
            supervisor.start()
        except EnvkitError as exc:
            answer = {
                "error": exc.message,
                "hint": exc.hint,
                "dependency": isinstance(exc, DependencyError),
            }
            os.write(status_w, json.dumps(answer).encode())
            os._exit(1)
        except BaseException as exc:
            os.write(status_w, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            os._exit(1)
        os.write(status_w, json.dumps({"pid": os.getpid()}).encode())
        os.close(status_w)
        supervisor.run()
        supervisor.teardown()
    finally:
        os._exit(0)
