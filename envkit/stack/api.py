"""Stacks from Python and for the CLI: :func:`up`, :func:`down`, :class:`RunningStack`.

::

    with stack.up() as running:              # builds, starts, waits for health
        port = running["web"].port(5000)     # the host port bound for it
        result = running["db"].exec(["psql", "-c", "select 1"])
    # down on exit: containers, networks and secret files removed; volumes kept
"""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from envkit import records
from envkit.errors import (
    DependencyError,
    EnvkitError,
    ImageNotFoundError,
    RegistryError,
    SpecError,
)
from envkit.runtime.state import process_start, wait_gone
from envkit.stack import cleanup, secrets
from envkit.stack import state as ss
from envkit.stack.limits import STOP_GRACE, UP_TIMEOUT

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing_extensions import Unpack

    from envkit.build.executor import Builder
    from envkit.build.lockfile import LockFile
    from envkit.build.progress import Progress
    from envkit.container.handle import Container, ExecResult
    from envkit.container.run_kwargs import ExecKwargs
    from envkit.spec import Stack
    from envkit.spec.readiness import Ready


class RunningService:
    """A service of a running stack: its current container, found through the stack's
    state, so a handle stays valid across restarts."""

    def __init__(self, stack: str, name: str) -> None:
        self.stack = stack
        self.name = name

    def container(self) -> Container:
        """The service's current container."""
        from envkit.container import handle  # lazy for start-up: `envkit up` opens none

        record = ss.require(self.stack).services.get(self.name)
        if record is None or not record.container:
            raise EnvkitError(f"stack {self.stack!r} has no running service {self.name!r}")
        return handle.get(record.container)

    @property
    def status(self) -> str:
        """``running``, ``restarting`` or ``exited``."""
        return ss.require(self.stack).services[self.name].status

    @property
    def health(self) -> str:
        """``""`` (no check), ``starting``, ``healthy`` or ``unhealthy``."""
        return ss.require(self.stack).services[self.name].health

    def port(self, container_port: int, protocol: str = "tcp") -> int:
        """The host port (on 127.0.0.1) that ``container_port`` is published on."""
        return self.container().port(container_port, protocol)

    def exec(self, cmd: Sequence[str], **options: Unpack[ExecKwargs]) -> ExecResult:
        """Run ``cmd`` in the service's container: its exit code and output (the options
        of :meth:`envkit.container.Container.exec`)."""
        return self.container().exec(cmd, **options)

    @property
    def ready(self) -> bool:
        """Whether the service is ready: running, its health check (if any) healthy and
        its ``ready`` probes (if any) passed."""
        record = ss.require(self.stack).services[self.name]
        return (
            record.status == "running"
            and record.health in ("", "healthy")
            and record.ready in ("", "ready")
        )

    def wait_ready(self, probe: Ready | None = None, timeout: float | None = None) -> None:
        """Wait until the service is ready (see :attr:`ready`), or, with ``probe``, until
        that probe passes on its container (``Ready.tcp(5432)``, ``Ready.http(...)``,
        ``Ready.log(...)``; its own ``timeout`` unless ``timeout`` is given).

        Raises :class:`~envkit.stack.DependencyError` naming the service, what was
        seen and the tail of its logs when it cannot get ready in time.
        """
        if probe is not None:
            problem = self._wait_probe(probe, probe.timeout if timeout is None else timeout)
        else:
            problem = self._wait_state(UP_TIMEOUT if timeout is None else timeout)
        if problem is not None:
            from envkit.stack.logs import tail  # lazy: logs are read only to explain

            lines = [f"stack {self.stack}: {self.name} is not ready: {problem}"]
            last = tail(ss.stack_dir(self.stack) / "logs" / self.name, 10)
            if last:
                lines += [f"  last log lines of {self.name}:", *(f"    {x}" for x in last)]
            raise DependencyError("\n".join(lines), hint=f"`envkit logs -p {self.stack}`")

    def _wait_probe(self, probe: Ready, timeout: float) -> str | None:
        # lazy: only a probe's wait; readiness forks its probes (host.forking)
        from envkit.stack import readiness
        from envkit.stack.logs import lines_since

        container = self.container()
        record = ss.require(self.stack).services[self.name]
        path = ss.stack_dir(self.stack) / "logs" / self.name
        target = readiness.Target(
            container.pid, container.reload, lambda: lines_since(path, record.started_at)
        )
        return readiness.wait(
            records.replace(probe, timeout=timeout),
            target,
            time.monotonic(),
            lambda: container.reload().running,
        )

    def _wait_state(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            record = ss.require(self.stack).services.get(self.name)
            if record is None:
                return "it is not part of the running stack"
            if record.ready == "failed":
                return record.ready_output
            if record.health == "unhealthy":
                return f"its health check failed: {record.health_output.strip()[-300:]}"
            if record.status in ("exited", "stopped"):
                return f"it is {record.status}"
            if self.ready:
                return None
            if time.monotonic() >= deadline:
                return f"not ready after {timeout:g} s"
            time.sleep(0.05)

    def logs(self) -> str:
        """Everything the service wrote so far, restarts included."""
        from envkit.stack.logs import service_text  # lazy: only where logs are read

        return service_text(self.stack, self.name)

    def __repr__(self) -> str:
        return f"<RunningService {self.stack}/{self.name}>"


class RunningStack:
    """A stack that is up; ``running["web"]`` is a :class:`RunningService`. As a context
    manager it is brought down on exit (volumes kept)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.name = stack.name

    def __getitem__(self, service: str) -> RunningService:
        if service not in self.stack:
            raise KeyError(f"stack {self.name!r} has no service {service!r}")
        return RunningService(self.name, service)

    def state(self) -> ss.StackState:
        """The stack's state on disk (services, containers, health, restarts)."""
        return ss.require(self.name)

    def logs(self) -> str:
        """The output of every service, each line prefixed with ``service |``."""
        from envkit.stack.logs import stream  # lazy: only where logs are read

        buffer = io.StringIO()
        stream(self.name, [s.name for s in self.stack.services], buffer)
        return buffer.getvalue()

    def stop(self, *services: str) -> None:
        """Stop services (all when none are named); they stay stopped until
        :meth:`start`."""
        lifecycle(self.name, "stop", services)

    def start(self, *services: str) -> None:
        """Start stopped services again (all stopped ones when none are named)."""
        lifecycle(self.name, "start", services)

    def restart(self, *services: str) -> None:
        """Stop and start services (all when none are named), each with a new container."""
        lifecycle(self.name, "restart", services)

    def down(self, volumes: bool = False, grace: float | None = None) -> None:
        """Stop and remove the stack (see :func:`down`)."""
        down(self.stack, volumes=volumes, grace=grace)

    def __enter__(self) -> RunningStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"<RunningStack {self.name}>"


def selected(stack: Stack, services: Sequence[str]) -> list[str]:
    """Services ``services`` and everything they depend on, in start order (all of
    them when ``services`` is empty)."""
    for name in services:
        if name not in stack:
            raise SpecError(
                "SERVICE",
                f"stack {stack.name!r} has no service {name!r}",
                hint="services: " + ", ".join(s.name for s in stack.services),
            )
    order = stack.start_order()
    if not services:
        return order
    wanted: set[str] = set()
    todo = list(services)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [t for t, _ in stack[name].depends_on]
    return [n for n in order if n in wanted]


def check(stack: Stack, names: Sequence[str]) -> None:
    """What can be checked before anything starts (the spec checked the rest): a
    volume whose backend is not installed or rejects its options, a ``healthy``
    dependency whose health check is disabled (``["NONE"]``) and that has no ``ready``
    probe (one with no check of its own may inherit its image's: the start tells), a
    missing secret file or variable, an env file that is missing or malformed."""
    # lazy: they import the spec (and volumes logging), which `down -p NAME` never loads
    from envkit.stack import environment, volumes

    volumes.check(stack)
    for name in names:
        for target, condition in stack[name].depends_on:
            # No check of its own may still mean its image's (docker's inheritance):
            # only a disabled one is known to be none before the image is resolved.
            check_ = stack[target].healthcheck
            disabled = check_ is not None and check_.disabled
            if condition == "healthy" and disabled and not stack[target].ready:
                raise SpecError(
                    f"Service({name!r}).depends_on",
                    f"waits for {target!r} to be healthy, but {target!r} has its health "
                    "check disabled and no ready probe",
                    hint=f"give {target} a healthcheck=Healthcheck(...) or ready=Ready.tcp(...), "
                    'or use "started"',
                )
    secrets.check(stack, names)
    for name in names:
        environment.service_env(stack, name)


def build_images(
    stack: Stack,
    names: Sequence[str],
    progress: Progress | None = None,
    *,
    pull: str = "missing",
    report: Callable[[str], None] | None = None,
    pull_output: TextIO | None = None,
) -> dict[str, str]:
    """Build (or find in the cache) the image of each service; service -> image id.

    A plain image reference is used as it is, pulled first as ``pull`` says (see
    :func:`pull_images`); anything else is built from the stack's directory, tagged
    ``<stack>-<svc>:latest``.
    """
    from envkit.spec.bases import FromRef  # lazy: no spec objects for `down -p NAME`

    builder: Builder | None = None
    context = stack.base_dir or Path.cwd()
    images = {}
    refs = {}
    for name in names:
        image = stack[name].image
        if not image.steps and isinstance(image.base, FromRef):
            refs[name] = str(image.base.ref)
    # Pulls first, all of them: their progress lines never cut into a build's live view.
    pull_images(refs, pull, report=report, output=pull_output)
    for name in names:
        image = stack[name].image
        if name in refs:
            images[name] = refs[name]
            continue
        if builder is None:
            # Only now: the build engine takes ~20 ms to import, and a stack of plain
            # image references never needs it.
            from envkit.build.executor import Builder
            from envkit.store.store import Store

            builder = Builder(Store.default(), progress=progress, lock=_lock_of(stack))
        images[name] = builder.build(image, context, tag=f"{stack.name}-{name}:latest").image_id
    return images


def pull_images(
    refs: Mapping[str, str],
    policy: str = "missing",
    *,
    report: Callable[[str], None] | None = None,
    output: TextIO | None = None,
) -> None:
    """Pull the image references of services (service -> ref) as docker compose's
    ``--pull`` ``policy`` says (:mod:`envkit.pulling`): ``missing`` those not in the
    store, ``always`` every name, ``never`` none (a missing one is an error naming the
    service). Each ref is pulled once; ``report`` gets a line for each pull (``db:
    pulling busybox:1 (not in the store)``, then what it got), ``output`` the pull's own
    progress lines (``None``: none)."""
    # lazy: only `up` pulls; keeps the pull policy and the store off `down`
    from envkit import pulling
    from envkit.store.store import Store

    pulling.check(policy)
    if not refs:
        return
    store = Store.default()
    done: set[str] = set()
    for name, ref in refs.items():
        if ref in done:
            continue
        done.add(ref)
        missing = False
        if policy != "always" or pulling.remote(ref) is None:
            try:
                store.resolve(ref)
                continue
            except ImageNotFoundError as exc:
                if policy == "never":
                    raise _for_service(name, pulling.not_present(ref, exc)) from None
                if pulling.remote(ref) is None:
                    raise _for_service(name, exc) from None
                missing = True
        shown = pulling.familiar(ref)
        if report is not None:
            why = "not in the store" if missing else "--pull=always"
            report(f"{name}: pulling {shown} ({why})")
        try:
            image = pulling.pull(ref, missing=missing, stream=output)
        except (ImageNotFoundError, RegistryError) as exc:
            raise _for_service(name, exc) from exc
        if report is not None:
            report(f"{name}: pulled {shown} ({image.descriptor.digest}): {pulling.status(image)}")


def _for_service(name: str, exc: EnvkitError) -> EnvkitError:
    """``exc`` (same class, message and hint) naming the service whose image it is about."""
    return type(exc)(f"Service({name!r}).image: {exc.message}", hint=exc.hint)


def up(
    stack: Stack,
    services: Sequence[str] = (),
    *,
    timeout: float = UP_TIMEOUT,
    progress: Progress | None = None,
    owned: bool = True,
    report: Callable[[str], None] | None = None,
    file: str = "",
    pull: str = "missing",
    pull_output: TextIO | None = None,
) -> RunningStack:
    """Build what changed and start ``stack`` (or ``services`` and their dependencies)
    in a supervisor process of its own; return once every service is started and the
    ones with a health check are healthy.

    ``owned``: the stack goes down when the calling process exits (``stack.up()``);
    else it runs on (``envkit up -d``). ``pull``: docker compose's ``--pull`` for the
    services' image references (``missing``, ``always``, ``never``; :func:`pull_images`),
    the pulls' progress lines on ``pull_output``. A failure raises one
    :class:`~envkit.errors.EnvkitError` naming the cause, after everything that was
    started is removed again.
    """
    names = selected(stack, services)
    check(stack, names)
    with ss.locked(stack.name):
        record = ss.load(stack.name)
        if record is not None and record.supervised:
            recreate(
                stack,
                names,
                record,
                progress=progress,
                report=report,
                pull=pull,
                pull_output=pull_output,
            )
            return RunningStack(stack)
        from envkit.stack import daemon  # lazy: only `up -d`; not loaded by `down`

        starting = daemon.Starting()  # it imports on another core while images resolve
        lease: str | None = None
        try:
            previous = _previous(stack, record)
            if previous is not None:
                names = _with_previous(stack, names, previous)
            images = build_images(
                stack, names, progress, pull=pull, report=report, pull_output=pull_output
            )
            lease = _network_early(stack, names)
            snapshots_early(images.values())
            owner = (os.getpid(), process_start(os.getpid()) or 0) if owned else None
            request = daemon.request_of(
                stack,
                images,
                names,
                file=file or _file_of(stack),
                owner=owner,
                timeout=timeout,
                previous=previous,
            )
            starting.start(request, report)
        finally:
            starting.close()
            if lease is not None:
                from envkit import network  # lazy: only a networked `up`, downward

                network.release(lease)
    return RunningStack(stack)


def snapshots_early(images: Iterable[str]) -> None:
    """Extract the images' layers here, while the supervisor imports on the other core:
    it then finds them made, and never loads the layer reader, OpenSSL's hashlib and the
    decompressors, which it would hold for the stack's whole life (issue 15's memory).
    Nothing to do, and no such import, for images extracted already."""
    from envkit.store import snapshots  # lazy: only `up`, downward
    from envkit.store.store import Store

    store = Store.default()
    for image in sorted(set(images)):
        snapshots.prepare_image(store, image)


def _network_early(stack: Stack, names: Sequence[str]) -> str | None:
    """Start the network holder and daemon here, while the supervisor imports on the
    other core: its first container would otherwise wait for them in turn (a fresh
    network daemon imports pyroute2). Returns the lease that keeps them up until the
    supervisor has connected its containers (release it then), or ``None`` when no
    service joins a network."""
    from envkit.stack import networking  # lazy: only `up`, downward

    if not networking.names(stack, names):
        return None
    from envkit import network  # lazy: only a networked `up`, downward
    from envkit.network.endpoints import lease_name

    lease = lease_name()
    network.prepare(lease)
    return lease


def up_foreground(
    stack: Stack,
    services: Sequence[str] = (),
    *,
    timeout: float = UP_TIMEOUT,
    progress: Progress | None = None,
    report: Callable[[str], None] | None = None,
    on_started: Callable[[], None] | None = None,
    file: str = "",
    pull: str = "missing",
    pull_output: TextIO | None = None,
) -> None:
    """``envkit up`` without ``-d``: hold the stack in this process until SIGINT or
    SIGTERM (or ``envkit down`` from elsewhere), then stop it gracefully."""
    from envkit.stack.supervisor import Supervisor  # lazy: a detached up runs it elsewhere

    names = selected(stack, services)
    check(stack, names)
    with ss.locked(stack.name):
        lost = _previous(stack, ss.load(stack.name))
        if lost is not None:
            names = _with_previous(stack, names, lost)
        images = build_images(
            stack, names, progress, pull=pull, report=report, pull_output=pull_output
        )
        supervisor = Supervisor(
            stack,
            images,
            names,
            file=file or _file_of(stack),
            timeout=timeout,
            report=report,
            previous=lost,
        )
        previous = {
            sig: signal.signal(sig, lambda *_: supervisor.request_stop())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            supervisor.start()
        except BaseException:
            _restore(previous)
            raise
    try:
        if on_started is not None:
            on_started()
        supervisor.run()
    finally:
        supervisor.teardown()
        _restore(previous)


def changed_services(
    stack: Stack, names: Sequence[str], record: ss.StackState, images: Mapping[str, str]
) -> list[str]:
    """Services ``names`` whose spec, env files or image differ from what runs (or that
    do not run yet), and services that run but are no longer in ``stack``."""
    out = [
        n
        for n in names
        if n not in record.services
        or record.services[n].spec_key != ss.spec_key(stack, n, images[n])
    ]
    return out + [n for n in record.order if n not in stack]


def recreate(
    stack: Stack,
    names: Sequence[str],
    record: ss.StackState,
    *,
    progress: Progress | None = None,
    report: Callable[[str], None] | None = None,
    pull: str = "missing",
    pull_output: TextIO | None = None,
) -> list[str]:
    """``up`` of a stack that is up: build, then have its supervisor recreate the
    services that changed (see :func:`changed_services`); those, or ``[]`` when the
    stack is up to date."""
    # lazy: only a stack that is up is asked (control loads socket); not loaded by `down`
    from envkit.stack import control, specjson

    images = build_images(stack, names, progress, pull=pull, report=report, pull_output=pull_output)
    if not changed_services(stack, names, record, images):
        if report is not None:
            report("up to date")
        return []
    snapshots_early(images[n] for n in names)
    # The stack goes as JSON data of spec objects, never pickled: the supervisor
    # rebuilds only spec classes from it (envkit.stack.specjson).
    request = control.Replace(specjson.encode(stack), images, tuple(names))
    answer = control.request(record.control_path, request, timeout=None)
    done = [str(n) for n in answer.get("recreated", [])]
    if report is not None:
        report("recreated: " + (", ".join(done) or "nothing"))
    return done


def lifecycle(stack: str, op: str, services: Sequence[str] = ()) -> list[str]:
    """``stop``, ``start`` or ``restart`` services of stack ``stack`` (all when none
    are named) through its supervisor; the services it acted on."""
    from envkit.stack import control  # lazy, as in recreate

    record = ss.require(stack)
    if not record.supervised:
        raise EnvkitError(
            f"stack {stack!r} has no supervisor any more",
            hint=f"`envkit down -p {stack}` cleans it up; then `envkit up`",
        )
    kinds = {"stop": control.Stop, "start": control.Start, "restart": control.Restart}
    if op not in kinds:
        raise ValueError(f"lifecycle: {op!r} is not stop, start or restart")
    answer = control.request(record.control_path, kinds[op](tuple(services)), timeout=None)
    return [str(n) for n in answer.get("services", [])]


def down(
    stack: Stack | str,
    *,
    volumes: bool = False,
    timeout: float | None = None,
    grace: float | None = None,
) -> bool:
    """Stop and remove a stack: its containers, networks, secret files and state;
    with ``volumes`` its named volumes too. Whether it was up.

    Works from any process: the supervisor is asked to stop and waited for (``timeout``
    seconds, by default the longest grace period of its services and 20 more); if it is
    gone, what it left is removed here. ``grace``: seconds each container gets between
    its stop signal and SIGKILL (compose's ``down -t``, which overrides each service's
    ``stop_grace_period``; default 10; 0 kills at once, as ``docker rm -f``).
    """
    name = stack if isinstance(stack, str) else stack.name
    with ss.locked(name):
        record = ss.load(name)
        if record is not None and record.supervised:
            longest = _ask_down(record, grace)
            if timeout is None:
                timeout = (longest if longest is not None else STOP_GRACE) + 20
            if not wait_gone(record.supervisor, record.supervisor_start, timeout):
                os.kill(record.supervisor, signal.SIGKILL)
                wait_gone(record.supervisor, record.supervisor_start, 5)
        leftover = ss.load(name)
        if leftover is not None:
            cleanup.remove_leftovers(leftover)
        if volumes:
            _remove_volumes(stack, record)
    # What a killed start of this stack left beside it (an endpoint and leases of a
    # container that never ran, records of dead owners) goes too, not at the next command.
    from envkit.container.handle import reap

    reap()
    return record is not None


def _ask_down(record: ss.StackState, grace: float | None = None) -> float | None:
    """Ask the supervisor to stop, over its socket; a signal when it does not answer.
    The longest grace period it will wait, when it says (None: the default's, or
    ``grace``)."""
    from envkit.stack import control  # lazy, as in recreate

    try:
        answer = control.request(record.control_path, control.Down(grace), timeout=5)
    except EnvkitError:
        os.kill(record.supervisor, signal.SIGTERM)
        return grace
    longest = answer.get("grace")
    if isinstance(longest, int | float) and not isinstance(longest, bool) and longest >= 0:
        return float(longest)
    return grace


def _remove_volumes(stack: Stack | str, record: ss.StackState | None) -> None:
    from envkit.stack import volumes as vol  # lazy: only `down -v`

    pairs = {tuple(v.split(":", 1)) for v in (record.volumes if record else [])}
    if not isinstance(stack, str):
        pairs |= {(v.backend, vol.full_name(stack.name, v)) for v in stack.volumes}
    vol.remove(sorted((b, n) for b, n in pairs))


def _previous(stack: Stack, record: ss.StackState | None) -> ss.StackState | None:
    """The state of ``stack`` when its supervisor was lost but containers of it still
    run (a new supervisor adopts them); else ``None``, after what a killed supervisor
    left is cleaned (:func:`_clear_previous`)."""
    from envkit.stack import recovery  # lazy: only `up`; not loaded by `down`

    if record is not None and not record.supervised and recovery.survivors(record):
        return record
    _clear_previous(stack.name)
    return None


def _with_previous(stack: Stack, names: Sequence[str], previous: ss.StackState) -> list[str]:
    """``names`` and the services of ``previous`` still in ``stack``, in start order."""
    return [n for n in stack.start_order() if n in names or n in previous.services]


def _clear_previous(name: str) -> None:
    """Refuse a stack that is up; clean what a killed supervisor left."""
    record = ss.load(name)
    if record is None:
        return
    if record.supervised:
        raise EnvkitError(
            f"stack {name!r} is already up (supervisor pid {record.supervisor})",
            hint=f"`envkit down -p {name}` first; `envkit stack ps -p {name}` shows it",
        )
    cleanup.remove_leftovers(record)


def _file_of(stack: Stack) -> str:
    return str(stack.base_dir) if stack.base_dir else ""


def _restore(previous: Mapping[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _lock_of(stack: Stack) -> LockFile | None:
    """The ``envkit.lock`` beside the stack file (as ``envkit build FILE`` uses it); none
    for a stack made in Python without a file."""
    from envkit.build.lockfile import LOCK_NAME, LockFile  # lazy: the build (~20 ms)

    if stack.base_dir is None:
        return None
    return LockFile.load(stack.base_dir / LOCK_NAME)
