"""The real container operations of a stack (:class:`~envkit.stack.instance.ContainerOps`):
store look-ups, volumes, secrets, networks, the runtime's start, health checks and
readiness probes, and the re-adoption of containers a lost supervisor left running.

Each container is started by the thread that will hold it (the runtime ties a
container's life to the thread that forked it). Starts run side by side, but the
runtime's part of each (fork, id maps, network attach) one at a time.

A container's stdout and stderr are named pipes (``stacks/<name>/fifo/<id>.out`` and
``.err``) that the container holds open for reading and writing: when its supervisor is
killed, its writes do not fail (no ``EPIPE``, no ``SIGPIPE``); they wait in the pipe
(64 KiB, then the writer blocks, as docker's default blocking log mode) until a new
supervisor opens the pipe again and pumps it into the service's log.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import cast

from envkit.container import handle
from envkit.container.options import RunOptions
from envkit.container.prepare import prepare
from envkit.container.start import start_attached
from envkit.errors import EnvkitError
from envkit.records import Value
from envkit.runtime import image_config
from envkit.runtime import logs as runtime_logs
from envkit.runtime import state as rs
from envkit.runtime.config import BindMount, TmpfsMount
from envkit.runtime.init import exit_code
from envkit.runtime.state import alive, init_ignores, wait_gone
from envkit.spec import Stack
from envkit.stack import (
    cleanup,
    environment,
    health,
    holding,
    image_health,
    networking,
    readiness,
    secrets,
    volumes,
)
from envkit.stack.image_health import ImageCheck
from envkit.stack.instance import Handle, Started
from envkit.stack.logs import MAX_BYTES, MAX_FILES, RotatingLogWriter
from envkit.store import snapshots
from envkit.store.store import Store

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.container.handle import Container
    from envkit.spec import Healthcheck
    from envkit.spec.readiness import Ready
    from envkit.stack.state import StackState


class Launcher:
    """Starts and removes the containers of one stack's supervisor."""

    def __init__(self) -> None:
        #: Held while a start attaches, seeds and chowns volumes and secrets (two
        #: services may share a named volume that is seeded on first use).
        self._files_lock = threading.Lock()
        #: Held around the runtime's part of a start. Its monitor process never execs,
        #: so it keeps every fd it inherits: forked while another start has its pipes
        #: open, it would hold their write ends, and that start would wait forever for
        #: the end of file it reads up to.
        self._spawn_lock = threading.Lock()
        #: What each (image, user) runs as, and its image's health check.
        self._image_users: dict[tuple[str, str | None], ImageFacts] = {}
        #: Each image's health check (what docker's containers inherit).
        self._image_checks: dict[str, ImageCheck] = {}
        self.created_volumes: list[str] = []
        self.created_networks: list[str] = []
        #: Ids of the containers taken over from a lost supervisor.
        self._adopted: set[str] = set()
        #: Those of them that are this process's children (it held the stack before,
        #: in its hold phase): their exit statuses are collected here.
        self._children: set[str] = set()
        #: Readable once the log pumps are to stop (:meth:`hold`).
        self._pumps_stop = os.pipe2(os.O_CLOEXEC)
        #: Where each container's named pipes are (container id -> dir).
        self._fifo_dirs: dict[str, Path] = {}

    # -- resources ---------------------------------------------------------------------

    def prepare(self, stack: Stack, names: Sequence[str], state: StackState) -> None:
        """Secret files, volumes and networks that services ``names`` need and that do
        not exist yet."""
        subset = only(stack, names)
        if any(stack[n].secrets for n in names):
            if not state.secrets_dir:
                state.secrets_dir = str(secrets.private_dir(stack.name))
                state.save()
            secrets.write_all(subset, Path(state.secrets_dir), missing_only=True)
        self.created_volumes += volumes.ensure(subset)
        entries = [f"{v.backend}:{volumes.full_name(stack.name, v)}" for v in subset.volumes]
        state.volumes = sorted({*state.volumes, *entries})
        anonymous = [
            f"{v.backend}:{volumes.full_name(stack.name, v)}" for v in subset.volumes if v.anonymous
        ]
        state.anonymous_volumes = sorted({*state.anonymous_volumes, *anonymous})
        state.networks = sorted({*state.networks, *networking.names(stack, names)})
        state.save()
        self.created_networks += networking.create(stack, names)

    def teardown(self, state: StackState, failed: bool) -> None:
        """Remove the stack's networks and secret files, the volumes a failed ``up``
        created, its anonymous volumes and those whose backend keeps no data."""
        cleanup.remove_networks(self.created_networks or state.networks)
        secrets.remove(state.secrets_dir)
        if failed and self.created_volumes:
            pairs = [tuple(v.split(":", 1)) for v in state.volumes]
            volumes.remove([(b, n) for b, n in pairs if n in self.created_volumes])
        volumes.remove_transient(state.volumes)
        volumes.remove_entries(state.anonymous_volumes)

    # -- containers --------------------------------------------------------------------

    def start(self, stack: Stack, name: str, image: str, state: StackState) -> Started:
        """Start a container of service ``name`` (in the thread that will hold it),
        its output pumped into the service's log."""
        spec = stack[name]
        key = (image, spec.user)
        if key not in self._image_users:
            self._image_users[key] = image_facts(image, spec.user)
        facts = self._image_users[key]
        uid, gid, layers, image_check = facts.uid, facts.gid, facts.layers, facts.health
        self._image_checks.setdefault(image, image_check)
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
                    directory = Path(state.secrets_dir)
                    mounts += secrets.mounts(spec.secrets, directory)
                    secrets.hand_to(spec.secrets, directory, uid, gid)
            log_path = state.log_path(name)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            started_at = runtime_logs.timestamp()
            with self._spawn_lock:
                container, out_r, err_r = self._run(stack, name, image, mounts, state)
        except BaseException:
            with self._files_lock:
                volumes.detach(attached)
            raise
        pump_thread = _pump(state, name, out_r, err_r, self._pumps_stop[0])
        return Started(
            container,
            started_at,
            networking.describe_ports(container),
            pump_thread,
            attached,
            container.reload().stop_signal,
            image_check.check,
            image_check.problem,
            volumes.recorded(attached),
        )

    def adopt(
        self, stack: Stack, name: str, container_id: str, state: StackState
    ) -> Started | None:
        """Take over container ``container_id`` of service ``name`` if it still runs
        (its supervisor was lost): record this process as its supervisor and pump its
        output again. ``None`` when it is gone. Its start time and ports are the
        caller's to fill in from the stack's previous state."""
        record = rs.load(rs.containers_dir() / container_id)
        if record is None:
            return None
        if rs.is_child(record.pid, record.pid_start):
            self._children.add(record.id)
        elif not rs.alive(record.pid, record.pid_start):
            return None
        record.supervisor, record.supervisor_start = os.getpid(), rs.process_start(os.getpid()) or 0
        record.save()
        self._adopted.add(record.id)
        fifo = self._fifo_dirs[record.id] = state.dir / "fifo"
        pump = None
        with suppress(OSError):
            out_r = _open_reader(fifo / f"{record.id}.out")
            try:
                err_r = _open_reader(fifo / f"{record.id}.err")
            except OSError:
                os.close(out_r)
                raise
            pump = _pump(state, name, out_r, err_r, self._pumps_stop[0])
        image = state.services[name].image_id if name in state.services else ""
        check = ImageCheck()
        if image:
            if image not in self._image_checks:
                with suppress(EnvkitError, OSError):
                    self._image_checks[image] = image_health.from_image(image_settings(image))
            check = self._image_checks.get(image, check)
        mounts = state.services[name].mounts if name in state.services else []
        return Started(
            handle.Container(record),
            "",
            [],
            pump,
            volumes.reattached(mounts),
            record.stop_signal,
            check.check,
            check.problem,
            [list(m) for m in mounts],
        )

    def forget(self, container_id: str) -> None:
        """Remove the record of container ``container_id`` if it is there and gone."""
        record = rs.load(rs.containers_dir() / container_id)
        if record is not None and not rs.alive(record.pid, record.pid_start):
            with suppress(EnvkitError, OSError):
                rs.remove(record)

    def _run(
        self,
        stack: Stack,
        name: str,
        image: str,
        mounts: Sequence[BindMount | TmpfsMount],
        state: StackState,
    ) -> tuple[Container, int, int]:
        """Start service ``name``'s container with its output on two named pipes; the
        container and the pipes' read ends."""
        spec = stack[name]
        network = networking.run_options(stack, name)
        fifo = state.dir / "fifo"
        fifo.mkdir(mode=0o700, exist_ok=True)
        token = f"new-{name}-{os.urandom(8).hex()}"
        out_r, out_w = _fifo(fifo / f"{token}.out")
        try:
            err_r, err_w = _fifo(fifo / f"{token}.err")
        except BaseException:
            os.close(out_r)
            os.close(out_w)
            raise
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            options = RunOptions(
                None if spec.command is None else list(spec.command),
                entrypoint=None if spec.entrypoint is None else list(spec.entrypoint),
                env=environment.service_env(stack, name),
                tmpfs=list(spec.tmpfs),
                shm_size=spec.shm_size,
                seccomp=spec.seccomp,
                ulimits={name: (soft, hard) for name, soft, hard in spec.ulimits},
                extra_hosts=[f"{name}:{address}" for name, address in spec.extra_hosts],
                sysctls=dict(spec.sysctls),
                workdir=spec.workdir,
                user=spec.user,
                hostname=spec.hostname or name,
                read_only=spec.read_only,
                init=spec.init,
                cap_add=spec.cap_add,
                cap_drop=spec.cap_drop,
                name=f"{stack.name}-{name}-1",
                stdio=(null, out_w, err_w),
                memory=spec.memory,
                cpus=spec.cpus,
                pids_limit=spec.pids_limit,
                network=network["network"],
                network_aliases=network["network_aliases"],
                ports=network["ports"],
                stop_signal=spec.stop_signal,
            )
            container = start_container(image, options, mounts, stack=stack.name)
            # Named after the container now: a new supervisor finds them by its id.
            for suffix in (".out", ".err"):
                os.rename(fifo / f"{token}{suffix}", fifo / f"{container.id}{suffix}")
            self._fifo_dirs[container.id] = fifo
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            for suffix in (".out", ".err"):
                with suppress(FileNotFoundError):
                    os.unlink(fifo / f"{token}{suffix}")
            raise
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        return container, out_r, err_r

    def gone(self, container: Handle) -> None:
        """Wait until the container's pid 1 has exited, its exit status not collected."""
        real = _real(container)
        if real.id in self._adopted and real.id not in self._children:
            record = real.reload()
            wait_exit(record.pid, record.pid_start)
            return
        start = rs.process_start(container.pid) or 0
        while not rs.wait_gone(container.pid, start, 3600):
            pass

    def wait(self, container: Handle) -> int | None:
        """Wait until the container is gone; its exit code, ``None`` for an adopted
        one that is not a child of this process (its exit status went to another)."""
        self.gone(container)
        real = _real(container)
        if real.id not in self._adopted:
            return real.wait()
        record = real.reload()
        code: int | None = None
        if real.id in self._children:
            code = exit_code(os.waitpid(record.pid, 0)[1])
        with suppress(OSError):
            record.mark_exited(rs.LOST_EXIT_CODE if code is None else code)
        return code

    def signal(self, container: Handle, sig: int) -> None:
        """Send ``sig`` to the container's pid 1; SIGKILL for a (stop) signal it has no
        handler for (the kernel would drop it: waiting out the grace period changes
        nothing)."""
        with suppress(EnvkitError, OSError):
            real = _real(container)
            if sig != signal.SIGKILL and init_ignores(real.pid, sig):
                sig = signal.SIGKILL
            real.kill(sig)

    def ignores(self, container: Handle, sig: int) -> bool:
        """Whether pid 1 is seen ignoring ``sig`` now (:func:`init_ignores`)."""
        with suppress(EnvkitError, OSError):
            return init_ignores(_real(container).pid, sig)
        return False

    def release(self, started: Started) -> None:
        """Unmount the named volumes the start attached."""
        volumes.detach(started.attached)

    def remove(self, container: Handle) -> None:
        """Remove the container's record and runtime dir, and its named pipes."""
        with suppress(EnvkitError, OSError):
            real = _real(container)
            record = rs.load(real.reload().dir)
            if record is not None:
                if container.id in self._adopted and record.networks:
                    # Started by a lost supervisor: no Attachment here to release it.
                    from envkit.network.attach import Attachment

                    Attachment(record.name, tuple(record.networks)).release()
                rs.remove(record)
        self._adopted.discard(container.id)
        fifo = self._fifo_dirs.pop(container.id, None)
        for suffix in (".out", ".err"):
            if fifo is not None:
                with suppress(FileNotFoundError):
                    os.unlink(fifo / f"{container.id}{suffix}")

    # -- the hold phase -----------------------------------------------------------------

    def hold(
        self,
        held: Sequence[tuple[str, Started]],
        state: StackState,
        listening: int,
        owner: tuple[int, int] | None,
        request: Mapping[str, object],
    ) -> None:
        """Replace this process with the hold program (:mod:`envkit.stack.hold`), which
        watches the containers ``held`` (service, what its start gave) and pumps their
        output, until an event makes it resume the full supervisor with ``request``.
        Returns when it cannot (no pidfds, a container's pipes or process gone): then
        everything runs as before."""
        if not holding.supported():
            return
        watch: list[tuple[int, int]] = []
        logs: list[tuple[str, str, str]] = []
        for name, started in held:
            container = started.container
            start = rs.process_start(container.pid)
            fifo = self._fifo_dirs.get(container.id)
            if start is None or fifo is None or started.pump is None:
                return
            watch.append((container.pid, start))
            out, err = (str(fifo / f"{container.id}{suffix}") for suffix in (".out", ".err"))
            logs.append((str(state.log_path(name)), out, err))
        argv = holding.program_argv(
            listening=listening,
            rotate=(MAX_BYTES, MAX_FILES),
            watch=watch,
            owner=owner,
            logs=logs,
        )
        if state.networks:
            from envkit.network import endpoints  # loaded already: the containers use it

            endpoints.release_own_leases()
        stop, self._pumps_stop = self._pumps_stop, os.pipe2(os.O_CLOEXEC)
        os.write(stop[1], b"s")
        for _, started in held:
            if started.pump is not None:
                started.pump.join()
        for fd in stop:
            os.close(fd)
        try:
            holding.become(argv, request, listening)
        except OSError as exc:
            import logging  # lazy: only for a failure

            logging.getLogger("envkit.stack").warning("cannot hold the stack: %s", exc)
        for name, started in held:  # still here: pump again
            ident = started.container.id
            with suppress(OSError):
                out_r = _open_reader(self._fifo_dirs[ident] / f"{ident}.out")
                try:
                    err_r = _open_reader(self._fifo_dirs[ident] / f"{ident}.err")
                except OSError:
                    os.close(out_r)
                    raise
                started.pump = _pump(state, name, out_r, err_r, self._pumps_stop[0])

    # -- checks ------------------------------------------------------------------------

    def health_check(self, container: Handle, check: Healthcheck) -> tuple[bool, str]:
        """Run ``check`` once in the container (as ``exec``)."""
        record = _real(container).reload()
        return health.run_once(record, health.argv(check), check.timeout)

    def ready_probe(
        self,
        container: Handle,
        probe: Ready,
        log_lines: Callable[[], Iterable[str]],
        started: float,
        alive: Callable[[], bool],
    ) -> str | None:
        """Try ``probe`` on the container until it passes or runs out of time."""
        real = _real(container)
        target = readiness.Target(pid=real.pid, record=real.reload, log_lines=log_lines)
        return readiness.wait(probe, target, started, alive)


def wait_exit(pid: int, start: int) -> None:
    """Wait until process ``pid`` (started at ``start``) is gone, though it is not a
    child: a pidfd becomes readable when the process exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfds (Linux < 5.3): poll the pid
        while not wait_gone(pid, start, 3600):
            pass
        return
    try:
        if not alive(pid, start):
            return  # gone, and the pid already reused
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(3_600_000):
            pass
    finally:
        os.close(fd)


def _fifo(path: Path) -> tuple[int, int]:
    """A named pipe at ``path``: its read end, and the end the container gets, open
    for reading and writing (so its writes never see a pipe without readers)."""
    os.mkfifo(path, 0o600)
    try:
        both = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except BaseException:
        os.unlink(path)
        raise
    try:
        reader = _open_reader(path)
    except BaseException:
        os.close(both)
        os.unlink(path)
        raise
    return reader, both


def _open_reader(path: Path) -> int:
    """``path``'s read end, blocking (opened without waiting for a writer), that sees
    the end of file once no writer is left."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # Opened with no writer (a container that exited, its status not collected
        # yet), the kernel reports no hang-up to this reader until a writer has come
        # and gone (fs/pipe.c suppresses it "until we have seen a writer"): one does.
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pump(state: StackState, name: str, out_r: int, err_r: int, stop: int) -> threading.Thread:
    """A thread copying the two pipes into the service's log until both are at EOF or
    ``stop`` is readable."""
    log_path = state.log_path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    writer = RotatingLogWriter(str(log_path))

    def pump() -> None:
        try:
            runtime_logs.pump(writer, {out_r: "stdout", err_r: "stderr"}, stop)
        finally:
            writer.close()

    thread = threading.Thread(target=pump, name=f"envkit-log-{name}", daemon=True)
    thread.start()
    return thread


def _real(container: Handle) -> Container:
    return cast("Container", container)


def only(stack: Stack, names: Sequence[str]) -> Stack:
    """``stack`` restricted to services ``names`` (all of them: the stack itself)."""
    if len(names) == len(stack.services):
        return stack
    clone = Stack(stack.name, [stack[n] for n in names])
    return clone.with_base_dir(stack.base_dir) if stack.base_dir else clone


def start_container(
    image: str, options: RunOptions, mounts: Sequence[BindMount | TmpfsMount], stack: str = ""
) -> Container:
    """``envkit.run(image, ...)`` held by this process, with ``mounts`` (volumes first)
    before the ones ``options`` make: ``run``'s ``volumes`` take only binds, and a
    backend's volume may be a sized tmpfs. A ``stack``'s container outlives a ``kill -9``
    of its supervisor, whose successor adopts it (its record names the stack)."""
    prepared = prepare(image, options)
    try:
        config = prepared.config.replace(mounts=[*mounts, *prepared.config.mounts])
        if stack:
            prepared.state.stack = stack
            prepared.state.save()
    except BaseException:
        prepared.abandon()
        raise
    return start_attached(prepared.replace(config), die_with_parent=not stack)


class ImageFacts(Value):
    """What a service's container gets from its image, read at its first start."""

    #: The container uid and gid it runs as (its ``user`` or the image's).
    uid: int
    gid: int
    #: The image's lower dirs (top first).
    layers: tuple[str, ...]
    #: The image's health check (:func:`envkit.stack.image_health.from_image`).
    health: ImageCheck


def image_facts(image: str, user: str | None) -> ImageFacts:
    """The container uid and gid a service runs as (its ``user`` or the image's), the
    image's lower dirs (top first) and its health check, from one read of its config."""
    # Made by `up` already (api.snapshots_early): a look here, unless pruned meanwhile.
    _, config, snapshot = snapshots.prepare_image(Store.default(), image)
    who = image_config.resolve_user(
        user if user is not None else str(config.config.get("User") or ""),
        image_config.read_image_file(snapshot.layers, "/etc/passwd"),
        image_config.read_image_file(snapshot.layers, "/etc/group"),
    )
    return ImageFacts(who.uid, who.gid, snapshot.layers, image_health.from_image(config.config))


def image_settings(image: str) -> Mapping[str, object]:
    """The ``config`` object of ``image``'s config (its ``Env``, ``Healthcheck``, ...)."""
    store = Store.default()
    _, manifest = store.image_manifest(store.resolve(image))
    return store.config(manifest).config
