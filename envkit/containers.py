"""Containers of store images: ``envkit.run()``, :class:`Container` and what the CLI's
``run``, ``ps``, ``stop``, ``kill``, ``rm``, ``logs`` and ``exec`` do.

An image's layers become shared read-only snapshots (:mod:`envkit.store.snapshots`);
each container gets a dir ``$ENVKIT_HOME/containers/<id>/`` with its record
(:mod:`envkit.runtime.state`), log, and overlay upper and work dirs. The dir stays after
the container exits (``ps -a`` shows it) until it is removed, or at once with ``--rm``
(``remove=True``). Docker's image-config rules are in :mod:`envkit.runtime.image_config`.

Who holds a container: a foreground ``envkit run`` or the Python process that called
:func:`run` (the container dies with it), or with ``detach=True`` / ``run -d`` a small
supervisor process of its own (double fork, new session) that keeps its log and
records its exit.
"""

from __future__ import annotations

import os
import signal
import time

from envkit.errors import EnvkitError, ImageNotFoundError, RuntimeError_, SpecError
from envkit.runtime import image_config
from envkit.runtime import state as st
from envkit.runtime.config import BindMount, ContainerConfig, Mount, TmpfsMount

# typing is not imported at run time: this module is on `envkit run`'s start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Mapping, Sequence
    from types import TracebackType
    from typing import TextIO

    from envkit.network.attach import Attachment, PortsSpec
    from envkit.network.ports import PortMapping
    from envkit.runtime.cgroups import Limits
    from envkit.runtime.nsexec import ExecProcess
    from envkit.runtime.spawn import Container as Engine
    from envkit.spec import Image
    from envkit.store.resolved import Resolved

#: Kept for callers of the former name.
remove_state = st.remove_dir


class RunOptions:
    """What ``docker run`` takes besides the image; ``None`` means "the image's".

    ``stdio``: host fds for the command's 0, 1, 2 (``None``: captured into the
    container's log). ``networks``: networks to join (``--network``; ``["none"]``:
    loopback only); empty means none, unless ``ports`` are published, which joins the
    default network ``envkit``. ``ports``: ``{host: container}`` or ``-p`` strings
    (``[IP:]HOST:CONTAINER[/udp]``). ``init``: a small init as pid 1 in front of the
    command (``--init``; :func:`envkit.runtime.init.find_init`). ``seccomp=False``: no
    seccomp filter (``--security-opt seccomp=unconfined``). ``cap_add``/``cap_drop``:
    capability names added to or dropped from docker's defaults (``--cap-add``,
    ``--cap-drop``; ``ALL`` for all); the seccomp filter follows them. ``pull``: docker's
    ``--pull`` policy for an image that is not in the store (``missing``, ``always``,
    ``never``; :mod:`envkit.pulling`), with docker's pull lines on ``pull_output``
    (``None``: silent). Not a dataclass: this module is on ``envkit run``'s start-up
    path (see :class:`envkit.runtime.config.BindMount`).
    """

    __slots__ = (
        "cap_add",
        "cap_drop",
        "cmd",
        "entrypoint",
        "env",
        "hostname",
        "init",
        "limits",
        "name",
        "network_aliases",
        "networks",
        "ports",
        "pull",
        "pull_output",
        "read_only",
        "remove",
        "seccomp",
        "stdio",
        "tmpfs",
        "tty",
        "user",
        "volumes",
        "workdir",
    )

    def __init__(
        self,
        cmd: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        volumes: Sequence[str | BindMount] = (),
        tmpfs: Sequence[str] = (),
        workdir: str | None = None,
        user: str | None = None,
        hostname: str | None = None,
        read_only: bool = False,
        name: str | None = None,
        stdio: tuple[int, int, int] | None = None,
        remove: bool = False,
        tty: bool = False,
        limits: Limits | None = None,
        networks: Sequence[str] = (),
        network_aliases: Sequence[str] = (),
        ports: PortsSpec = (),
        init: bool = False,
        seccomp: bool = True,
        cap_add: Sequence[str] = (),
        cap_drop: Sequence[str] = (),
        pull: str = "missing",
        pull_output: TextIO | None = None,
    ) -> None:
        if pull not in ("missing", "always", "never"):
            from envkit.pulling import check

            check(pull, "pull")
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.env: Mapping[str, str] = {} if env is None else env
        self.volumes = volumes
        self.tmpfs = tmpfs
        self.workdir = workdir
        self.user = user
        self.hostname = hostname
        self.read_only = read_only
        self.name = name
        self.stdio = stdio
        self.remove = remove
        self.tty = tty
        self.limits = limits
        self.networks = networks
        self.network_aliases = network_aliases
        self.ports = ports
        self.init = init
        self.seccomp = seccomp
        self.cap_add = cap_add
        self.cap_drop = cap_drop
        self.pull = pull
        self.pull_output = pull_output


class ExecResult(tuple[int, str]):
    """What :meth:`Container.exec` returns (docker-py's ``exec_run`` shape):
    ``(exit_code, output)``."""

    __slots__ = ()

    def __new__(cls, exit_code: int, output: str) -> ExecResult:
        return tuple.__new__(cls, (exit_code, output))

    @property
    def exit_code(self) -> int:
        return self[0]

    @property
    def output(self) -> str:
        return self[1]

    def __repr__(self) -> str:
        return f"ExecResult(exit_code={self[0]!r}, output={self[1]!r})"


class Prepared:
    """A container ready to start: its record and the engine's config; ``network``: its
    networks and published ports, ``None`` for loopback only."""

    __slots__ = ("config", "network", "state")

    def __init__(
        self, state: st.ContainerState, config: ContainerConfig, network: Attachment | None = None
    ) -> None:
        self.state, self.config, self.network = state, config, network

    def replace(self, config: ContainerConfig) -> Prepared:
        """The same container with another engine config."""
        return Prepared(self.state, config, self.network)

    @property
    def id(self) -> str:
        return self.state.id

    def abandon(self) -> None:
        """The container did not start: give back its ports and networks, drop its record."""
        try:
            if self.network is not None:
                self.network.release()
        finally:
            st.remove(self.state)


class Container:
    """A container: started by :func:`run`, or found by name or id with :func:`get`.

    Methods work from any process (they go through the record on disk); ``wait``
    is immediate for the process that holds the container. As a context manager it is
    stopped and removed on exit.
    """

    def __init__(
        self,
        record: st.ContainerState,
        engine: Engine | None = None,
        pump: threading.Thread | None = None,
        network: Attachment | None = None,
    ) -> None:
        self._state = record
        self._engine = engine
        self._pump = pump
        self._network = network

    @property
    def id(self) -> str:
        """The 64-hex-digit container id."""
        return self._state.id

    @property
    def name(self) -> str:
        """The container's unique name (``--name`` or a generated adjective_noun)."""
        return self._state.name

    @property
    def pid(self) -> int:
        """Host pid of the container's init (pid 1 inside)."""
        return self._state.pid

    @property
    def status(self) -> str:
        """``created``, ``running`` or ``exited`` (re-read from disk)."""
        return self.reload().status

    @property
    def returncode(self) -> int | None:
        """The exit code once the container exited, else ``None``."""
        if self._engine is not None:
            return self._engine.returncode
        record = self.reload()
        return record.exit_code if record.status == st.EXITED else None

    def reload(self) -> st.ContainerState:
        """Re-read the record (another process may have changed it)."""
        fresh = st.load(self._state.path())
        if fresh is not None:
            self._state = fresh
        return self._state

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the container's init, which passes it to the command.

        SIGKILL (the default, as ``docker kill``) ends the init and every process.
        """
        if self._engine is not None:
            self._engine.kill(sig)
        else:
            st.kill_init(self.reload(), sig)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the container to exit; its exit code (128+N for signal N).

        Raises :class:`TimeoutError` after ``timeout`` seconds (``None``: no limit).
        """
        if self._engine is not None:
            if timeout is not None and not st.wait_gone(
                self._state.pid, self._state.pid_start, timeout
            ):
                raise TimeoutError(f"container {self.name} still runs after {timeout} s")
            code = self._engine.wait()
            _finish(self._state, code, self._pump, self._network)
            self._engine = None
            return code
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.reload()
            if not os.path.exists(record.path("state.json")):  # --rm: removed at exit
                noted = st.removed_exit_code(record.id)
                return st.LOST_EXIT_CODE if noted is None else noted
            if record.status == st.EXITED and record.exit_code is not None:
                return record.exit_code
            if not st.alive(record.supervisor, record.supervisor_start):
                reap()
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"container {self.name} still runs after {timeout} s")
            if record.status == st.RUNNING and not st.wait_gone(
                record.pid, record.pid_start, 1.0 if left is None else min(left, 1.0)
            ):
                continue
            time.sleep(0.01)  # the supervisor is writing the exit code

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (``docker stop``); the exit code."""
        record = self.reload()
        if record.status == st.RUNNING and self.returncode is None:
            self.kill(signal.SIGTERM)
            if not st.wait_gone(record.pid, record.pid_start, timeout):
                self.kill(signal.SIGKILL)
        return self.wait()

    def remove(self, force: bool = False) -> None:
        """Delete the container (its dir, log and name); ``force`` kills it first."""
        record = self.reload()
        if record.status == st.RUNNING and self.returncode is None:
            if not force:
                raise RuntimeError_(
                    f"container {self.name} is running",
                    hint=f"stop it first (`envkit stop {self.name}`) or force: `envkit rm -f`",
                )
            self.kill(signal.SIGKILL)
            self.wait()
        st.remove(self.reload())

    def ports(self) -> list[PortMapping]:
        """Its published ports as bound (``envkit port NAME``); ``[]`` when it runs no more."""
        if not self.reload().running:
            return []
        from envkit.network import ports

        return ports.published(self.name)

    def port(self, container_port: int, protocol: str = "tcp") -> int:
        """The host port that ``container_port`` is published on (port 0 resolved)."""
        for mapping in self.ports():
            if mapping.container_port == container_port and mapping.protocol == protocol:
                return mapping.host_port
        from envkit.errors import NetworkError

        raise NetworkError(
            f"container {self.name} does not publish port {container_port}/{protocol}",
            hint=f"publish it: ports={{0: {container_port}}} or -p 0:{container_port}",
        )

    def logs(self) -> str:
        """The container's output so far (captured output only: see :func:`run`)."""
        from envkit.runtime import logs

        return logs.text(self._state.path("log"))

    def exec(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        stdio: tuple[int, int, int] | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in the running container; its exit code and output (stdout and
        stderr together; ``""`` when ``stdio`` was given)."""
        if stdio is not None:
            process = start_exec(
                self.reload(), cmd, env=env, workdir=workdir, user=user, stdio=stdio
            )
            return ExecResult(process.wait(), "")
        read_fd, write_fd = os.pipe()
        try:
            with open(os.devnull, "rb") as devnull:
                process = start_exec(
                    self.reload(),
                    cmd,
                    env=env,
                    workdir=workdir,
                    user=user,
                    stdio=(devnull.fileno(), write_fd, write_fd),
                )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            output = pipe.read()
        code = process.wait()
        return ExecResult(code, output.decode(errors="replace") + process.error)

    def __enter__(self) -> Container:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(timeout=10)
        if st.load(self._state.path()) is not None:
            self.remove()

    def __repr__(self) -> str:
        return f"<Container {self.name} {self.id[:12]}>"


def reap() -> None:
    """Finish what killed envkit processes left: detached containers whose monitor died
    go to a new monitor (re-adopted), other records are finished (see
    :func:`envkit.runtime.state.reap`), then their networks, ports and namespace holder."""
    adopt_orphans()
    st.reap(keep_orphans=True)
    from envkit import settings

    if os.path.exists(os.path.join(settings.home_dir(), "network", "holder.json")):
        from envkit import network

        network.reap()


def adopt_orphans() -> None:
    """Start a monitor when detached containers run without one: it adopts them."""
    if st.orphans():
        from envkit.container import monitor_client

        monitor_client.connect().close()


def get(name_or_id: str) -> Container:
    """The container with that name, id or unique id prefix (``envkit ps -a`` lists them)."""
    reap()
    return Container(st.find(name_or_id))


def list_containers(all: bool = False) -> list[Container]:
    """Running containers (with ``all``: every container), oldest first."""
    reap()
    return [Container(s) for s in st.all_states() if all or s.status == st.RUNNING]


def run(
    image: str | Image,
    cmd: Sequence[str] | None = None,
    *,
    entrypoint: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    volumes: Sequence[str | BindMount] = (),
    tmpfs: Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    hostname: str | None = None,
    read_only: bool = False,
    name: str | None = None,
    stdio: tuple[int, int, int] | None = None,
    detach: bool = False,
    remove: bool = False,
    memory: str | None = None,
    cpus: str | float | None = None,
    pids_limit: int | None = None,
    network: str | Sequence[str] | None = None,
    network_aliases: Sequence[str] = (),
    ports: PortsSpec = (),
    init: bool = False,
    cap_add: Sequence[str] = (),
    cap_drop: Sequence[str] = (),
    pull: str = "missing",
) -> Container:
    """Start a container of ``image`` (a name, id or digest in the store, or
    ``Image.from_(ref)``) and return it once its command runs.

    ``cmd`` replaces the image's Cmd, ``entrypoint`` its Entrypoint (and clears Cmd);
    ``volumes`` are ``"SRC:DST[:ro]"`` strings or :class:`BindMount`; ``tmpfs`` are
    container paths. Output goes to the container's log (:meth:`Container.logs`) unless
    ``stdio`` gives host fds for 0, 1, 2. The container belongs to this process and dies
    with it, unless ``detach=True``: then a supervisor process of its own holds it and
    it runs on after this process (``envkit ps`` shows it). ``remove=True`` deletes it
    when it exits (``--rm``). ``memory`` (``"256m"``), ``cpus`` and ``pids_limit`` need
    a delegated cgroup v2 subtree. ``network`` names the network(s) to join (see
    :mod:`envkit.network`; default: loopback only), ``ports`` publishes ports as
    ``{host: container}`` on 127.0.0.1 (host port 0: a free one, :meth:`Container.port`
    tells which); publishing without ``network`` joins the default network ``envkit``.
    The command is the container's pid 1, as in docker; ``init=True`` puts a small init
    in front (``docker run --init``). ``cap_add``/``cap_drop`` change docker's default
    capabilities (``--cap-add``/``--cap-drop``). ``pull``: as ``docker run --pull``,
    ``"missing"`` pulls an image that is not in the store from its registry (silently),
    ``"always"`` pulls the name first every time, ``"never"`` uses the store alone::

        with envkit.run("busybox", ["sh", "-c", "echo hi"]) as c:
            assert c.wait() == 0 and c.logs() == "hi\\n"
    """
    limits = None
    if memory is not None or cpus is not None or pids_limit is not None:
        from envkit.runtime.cgroups import Limits

        limits = Limits.parse(
            memory,
            None if cpus is None else str(cpus),
            None if pids_limit is None else str(pids_limit),
        )
    options = RunOptions(
        cmd=cmd,
        entrypoint=entrypoint,
        env=dict(env or {}),
        volumes=volumes,
        tmpfs=tmpfs,
        workdir=workdir,
        user=user,
        hostname=hostname,
        read_only=read_only,
        name=name,
        stdio=stdio,
        remove=remove,
        limits=limits,
        networks=[network] if isinstance(network, str) else list(network or ()),
        network_aliases=network_aliases,
        ports=ports,
        init=init,
        cap_add=cap_add,
        cap_drop=cap_drop,
        pull=pull,
    )
    prepared = prepare(image, options)
    if detach:
        return Container(start_detached(prepared))
    return _start_attached(prepared)


def _start_attached(prepared: Prepared) -> Container:
    """Start a container held by this process; output to its log when no stdio given."""
    from envkit.runtime.spawn import start

    config, pipes = prepared.config, None
    if config.stdio is None:
        pipes = _log_pipes()
        config = config.replace(stdio=(pipes[0], pipes[2], pipes[4]))
    try:
        engine = start(
            _networked(prepared, config),
            runtime_dir=prepared.state.path("rt"),
            reparent=True,
        )
    except BaseException:
        prepared.abandon()
        raise
    finally:
        if pipes is not None:
            for fd in (pipes[0], pipes[2], pipes[4]):
                os.close(fd)
    prepared.state.mark_running(engine.pid)
    pump = None
    if pipes is not None:
        import threading

        pump = threading.Thread(
            target=_pump_logs,
            args=(prepared.state.path("log"), {pipes[1]: "stdout", pipes[3]: "stderr"}),
            name=f"envkit-log-{prepared.id[:12]}",
            daemon=True,
        )
        pump.start()
    return Container(prepared.state, engine, pump, prepared.network)


def _networked(prepared: Prepared, config: ContainerConfig) -> ContainerConfig:
    """``config`` joining the network holder's user namespace and connected from there,
    when the container has networks. Call in the process that starts the container."""
    if prepared.network is None:
        return config
    return config.replace(userns=prepared.network.userns(), on_namespaces=prepared.network)


def run_foreground(image: str | Image, options: RunOptions, *, interactive: bool = False) -> int:
    """Run a container in the foreground, as ``docker run`` does; its exit code.

    stdout and stderr are the caller's; stdin too with ``interactive`` (else
    /dev/null); where one of them is a terminal, the container gets a pipe relayed to it
    (:mod:`envkit.runtime.relay`), never the terminal itself. ``options.tty`` connects
    the caller's terminal to a pty of the container. Signals sent to the caller are
    passed on. The container's record stays (exited) unless ``options.remove``.
    """
    from envkit.runtime import relay
    from envkit.runtime.spawn import proxy_signals, start

    reap()
    prepared = prepare(image, options)
    config = prepared.config
    shield = None
    with open(os.devnull, "rb") as devnull:
        if config.stdio is None and not config.tty:
            stdin = 0 if interactive else devnull.fileno()
            shield = relay.shield((stdin, 1, 2))
            config = config.replace(stdio=(stdin, 1, 2) if shield is None else shield.stdio)
        try:
            engine = start(
                _networked(prepared, config), runtime_dir=prepared.state.path("rt"), reparent=True
            )
        except BaseException:
            if shield is not None:
                shield.finish()
            prepared.abandon()
            raise
    if shield is not None:
        shield.start()
    code: int | None = None
    try:
        prepared.state.mark_running(engine.pid)
        with proxy_signals(engine):
            if engine.console is not None:
                from envkit.runtime import tty

                try:
                    tty.attach(engine.console, 0 if interactive else None, 1)
                finally:
                    os.close(engine.console)
            code = engine.wait()
    finally:
        if code is None:  # interrupted: make sure nothing of it outlives this call
            engine.kill(signal.SIGKILL)
            code = engine.wait()
        if shield is not None:
            shield.finish()
        _finish(prepared.state, code, None, prepared.network)
    return code


def start_detached(prepared: Prepared) -> st.ContainerState:
    """Hand the container to this home's monitor and return once its command runs.

    The monitor (:mod:`envkit.container.monitor`, started on demand) becomes the
    container's parent, keeps its log, records its exit code and removes ``--rm``
    containers; this process does its part of the start (id maps, networks) and leaves.
    Start failures come back here as :class:`StartError`.
    """
    from envkit.container import monitor_client
    from envkit.runtime.spawn import start

    record = prepared.state
    record.detached = True
    if prepared.network is not None:
        record.networks = list(prepared.network.networks)
    try:
        connection = monitor_client.connect()
    except BaseException:
        prepared.abandon()
        raise
    try:
        config = prepared.config.replace(die_with_parent=False)
        engine = start(
            _networked(prepared, config),
            runtime_dir=record.path("rt"),
            launcher=connection.for_container(record.path()).launcher,
        )
    except BaseException:
        connection.close()
        prepared.abandon()
        raise
    try:
        try:
            record.supervisor, record.supervisor_start = connection.pid, connection.start
            record.mark_running(engine.pid)
        except BaseException:
            connection.close()  # the monitor stops the container it was never given
            prepared.abandon()
            raise
        try:
            connection.started(engine.pid, engine.console)
        except (OSError, monitor_client.MonitorError):
            # The monitor died at this moment (kill -9): the container runs and its
            # record says so; the next envkit command has a new monitor adopt it.
            connection.close()
    finally:
        if engine.console is not None:
            os.close(engine.console)
        if prepared.network is not None:
            prepared.network.close_ports()  # the port forwarder holds them now
    return record


def _pump_logs(path: str, streams: dict[int, str]) -> None:
    from envkit.runtime import logs

    writer = logs.LogWriter(path)
    try:
        logs.pump(writer, streams)
    finally:
        writer.close()


def _finish(
    record: st.ContainerState,
    code: int,
    pump: threading.Thread | None,
    network: Attachment | None = None,
) -> None:
    """After the container exited: end the log, leave its networks, record the code,
    ``--rm`` it."""
    if pump is not None:
        pump.join()
    if network is not None:
        try:
            network.release()
        except EnvkitError as exc:  # network.reap() finishes it later
            import logging

            logging.getLogger("envkit.containers").warning(
                "container %s: leaving its networks failed: %s", record.name, exc
            )
    if record.auto_remove:
        st.remove(record)
        # In memory too: a later wait() (a `with` block's exit) must not wait for a
        # record that is gone.
        record.status, record.exit_code = st.EXITED, code
        return
    record.mark_exited(code)


def _log_pipes() -> tuple[int, int, int, int, int]:
    """stdin (/dev/null) and two pipes: ``(null, out_r, out_w, err_r, err_w)``."""
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    return null, out_r, out_w, err_r, err_w


def start_exec(
    record: st.ContainerState,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    stdio: tuple[int, int, int] | None = None,
    tty: bool = False,
) -> ExecProcess:
    """Start ``cmd`` in a running container as ``docker exec``: the container's env,
    working dir and user unless overridden; returns an
    :class:`envkit.runtime.nsexec.ExecProcess`."""
    from envkit.runtime import nsexec
    from envkit.runtime.config import ExecConfig

    if not record.running:
        raise RuntimeError_(
            f"container {record.name} is not running",
            hint="`envkit ps -a` shows its state; start a new one with `envkit run`",
        )
    uid, gid, groups = record.uid, record.gid, record.groups
    if user is not None:
        layers = _layers_of(record)
        who = image_config.resolve_user(
            user,
            image_config.read_image_file(layers, "/etc/passwd"),
            image_config.read_image_file(layers, "/etc/group"),
        )
        uid, gid, groups = who.uid, who.gid, list(who.groups)
    config = ExecConfig(
        argv=list(cmd),
        env={**record.env, **(env or {})},
        cwd=workdir or record.cwd,
        uid=uid,
        gid=gid,
        groups=groups,
        stdio=stdio,
        tty=tty,
        tty_size=_terminal_size() if tty else (0, 0),
        seccomp=record.seccomp,  # docker exec: the container's profile and capabilities
        capabilities=None if record.capabilities is None else frozenset(record.capabilities),
    )
    return nsexec.start(record.pid, config)


def _terminal_size() -> tuple[int, int]:
    from envkit.runtime.tty import window_size

    return window_size(0, 1)


def _layers_of(record: st.ContainerState) -> list[str]:
    return list(_resolve(record.image_id).layers)


def _resolve(ref: str) -> Resolved:
    """The image's id, config and snapshot lower dirs: remembered from an earlier run
    (:mod:`envkit.store.resolved`), else from the store, extracting missing snapshots."""
    from envkit.store import resolved

    found = resolved.lookup(ref)
    if found is not None:
        return found
    stamp = resolved.index_stamp()
    from envkit.store import snapshots
    from envkit.store.layout import Store

    store = Store.default()
    _, manifest = store.image_manifest(store.resolve(ref))
    config = store.config(manifest)
    snapshot = snapshots.prepare(store, [d.digest for d in manifest.layers], config.diff_ids)
    found = resolved.Resolved(str(manifest.config.digest), dict(config.config), snapshot.layers)
    if stamp is not None:
        resolved.remember(ref, found, snapshot.marks, stamp)
    return found


def _resolve_pulling(ref: str, policy: str, output: TextIO | None) -> Resolved:
    """:func:`_resolve`, after pulling ``ref`` as the pull ``policy`` says
    (:mod:`envkit.pulling`, imported only when the store lacks the image or the policy is
    ``always``). Called holding the store lock shared, as a pull itself holds it."""
    if policy == "always":
        from envkit import pulling

        if pulling.remote(ref) is not None:
            pulling.pull(ref, missing=False, stream=output)
        return _resolve(ref)
    try:
        return _resolve(ref)
    except ImageNotFoundError as exc:
        from envkit import pulling

        if policy == "never":
            raise pulling.not_present(ref, exc) from None
        if pulling.remote(ref) is None:
            raise
    pulling.pull(ref, missing=True, stream=output)
    return _resolve(ref)


def prepare(image: str | Image, options: RunOptions) -> Prepared:
    """Snapshots of the image's layers, the container's record and dirs, the engine's
    config (and its cgroup when limits are asked for)."""
    ref = _image_ref(image)
    from envkit.store.resolved import holding

    # Until the record exists, prune keeps the snapshots picked here (see holding).
    with holding():
        image_info = _resolve_pulling(ref, options.pull, options.pull_output)
        settings, layers = image_info.settings, image_info.layers
        who = image_config.resolve_user(
            options.user if options.user is not None else str(settings.get("User") or ""),
            image_config.read_image_file(layers, "/etc/passwd"),
            image_config.read_image_file(layers, "/etc/group"),
        )
        argv = image_config.command(settings, options.cmd, options.entrypoint)
        env = image_config.environment(settings, options.env, home=who.home)
        cwd = image_config.workdir(settings, options.workdir)
        mounts = _mounts(options)
        capabilities = None
        if options.cap_add or options.cap_drop:
            from envkit.runtime import caps

            capabilities = caps.resolve(options.cap_add, options.cap_drop)
        engine_argv = argv
        if options.init:
            from envkit.runtime import init

            mounts.append(BindMount(init.find_init(), init.INIT_PATH, readonly=True))
            engine_argv = [init.INIT_PATH, "--", *argv]
        record = st.create(
            name=options.name,
            image=ref,
            image_id=image_info.image_id,
            argv=list(argv),
            auto_remove=options.remove,
            env=dict(env),
            cwd=cwd,
            uid=who.uid,
            gid=who.gid,
            groups=list(who.groups),
            tty=options.tty,
            seccomp=options.seccomp,
            capabilities=None if capabilities is None else sorted(capabilities),
        )
    network: Attachment | None = None
    try:
        os.mkdir(record.path("upper"))
        os.mkdir(record.path("work"))
        hostname = options.hostname or record.id[:12]
        if options.networks or options.ports:
            from envkit.network.attach import Attachment
            from envkit.network.state import NAME_RE

            # As docker, the container's hostname resolves too (when it is a valid name).
            extra = [hostname] if NAME_RE.match(hostname) else []
            aliases = dict.fromkeys([*options.network_aliases, *extra])
            aliases.pop(record.name, None)
            network = Attachment.plan(record.name, options.networks, list(aliases), options.ports)
            if network is not None:
                mounts += network.mounts()
        if options.limits:
            from envkit.runtime import cgroups

            record.cgroup = cgroups.create(options.limits, f"envkit-{record.id[:12]}")
            record.save()
        engine_config = ContainerConfig(
            layers=layers,
            argv=engine_argv,
            upper_dir=record.path("upper"),
            work_dir=record.path("work"),
            env=env,
            cwd=cwd,
            uid=who.uid,
            gid=who.gid,
            groups=who.groups,
            hostname=hostname,
            mounts=mounts,
            readonly_root=options.read_only,
            stdio=options.stdio,
            tty=options.tty,
            tty_size=_terminal_size() if options.tty else (0, 0),
            cgroup=record.cgroup or None,
            seccomp=options.seccomp,
            capabilities=capabilities,
        )
    except BaseException:
        if network is not None:
            network.close_ports()
        st.remove(record)
        raise
    return Prepared(record, engine_config, network)


def _image_ref(image: object) -> str:
    if isinstance(image, str):
        return image
    base = getattr(image, "base", None)
    if base is not None and getattr(base, "kind", "") == "ref" and not getattr(image, "steps", ()):
        return str(base.ref)
    build = getattr(image, "build", None)
    if base is not None and callable(build):
        # Like `docker run` of a Dockerfile's result: build (cached: a no-op when nothing
        # changed), then run the built image by its manifest digest.
        return str(build().digest)
    raise SpecError("image", "expected an image name, id or Image.from_(ref)", value=image)


def _mounts(options: RunOptions) -> list[Mount]:
    mounts: list[Mount] = []
    for volume in options.volumes:
        mounts.append(volume if isinstance(volume, BindMount) else BindMount.parse(volume))
    mounts += [TmpfsMount(target) for target in options.tmpfs]
    return mounts
