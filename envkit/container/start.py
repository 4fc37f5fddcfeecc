"""Starting containers: ``envkit.run()``, a foreground ``envkit run`` and a detached
one (``run -d``), which goes to this home's container monitor (:mod:`.monitor`).

Who holds a container: a foreground ``envkit run`` or the Python process that called
:func:`run` (the container dies with it), or with ``detach=True`` / ``run -d`` the
monitor, which keeps its log and records its exit."""

from __future__ import annotations

import os
import signal

from envkit.container.handle import Container, finish, pump_logs, reap
from envkit.container.options import RUN_KEYWORDS, RunOptions, check_keywords
from envkit.container.prepare import Prepared, prepare
from envkit.errors import MonitorError
from envkit.runtime import state as st
from envkit.runtime.config import ContainerConfig

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import Unpack

    from envkit.container.run_kwargs import RunKwargs
    from envkit.spec import Image


def run(
    image: str | Image, cmd: Sequence[str] | None = None, **options: Unpack[RunKwargs]
) -> Container:
    """Start a container of ``image`` (a name, id or digest in the store, or
    ``Image.from_(ref)``) and return it once its command runs.

    ``cmd`` replaces the image's Cmd. The keyword options are docker run's, each typed
    and documented in :class:`envkit.container.run_kwargs.RunKwargs`; another keyword
    raises ``TypeError``. Output goes to the container's log (:meth:`Container.logs`)
    unless ``stdio`` gives host fds for 0, 1, 2. The container belongs to this process
    and dies with it, unless ``detach=True``: then this home's monitor holds it and it
    runs on after this process (``envkit ps`` shows it). The command is the container's
    pid 1, as in docker (``init=True`` puts a small init in front). An image that is not
    in the store is pulled from its registry first, silently (``pull="missing"``)::

        with envkit.run("busybox", ["sh", "-c", "echo hi"]) as c:
            assert c.wait() == 0 and c.logs() == "hi\\n"
    """
    check_keywords("run", options, RUN_KEYWORDS)
    run_options = RunOptions(cmd, **options)
    prepared = prepare(image, run_options)
    if run_options.detach:
        return Container(start_detached(prepared))
    return start_attached(prepared)


def start_attached(prepared: Prepared, *, die_with_parent: bool = True) -> Container:
    """Start a container held by this process (pid 1 becomes its child); output to its
    log when no stdio given. ``die_with_parent=False`` lets it outlive a ``kill -9`` of
    this process, for a monitor that adopts it afterwards (a stack's next supervisor)."""
    from envkit.runtime.spawn import start  # lazy: each start loads its own path

    config, pipes = prepared.config, None
    if config.stdio is None:
        pipes = _log_pipes()
        config = config.replace(stdio=(pipes[0], pipes[2], pipes[4]))
    try:
        if not die_with_parent:
            config = config.replace(die_with_parent=False)
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
        import threading  # lazy: only to pump captured output

        pump = threading.Thread(
            target=pump_logs,
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
    # lazy: each start loads its own path (downward)
    from envkit.runtime import relay
    from envkit.runtime.spawn import proxy_signals, start

    reap()
    prepared = prepare(image, options)
    config = prepared.config
    shield = None
    # Signals that come once the command runs are the container's, even before this
    # process could say so (a Ctrl-C just after the exec is not envkit's own).
    with proxy_signals() as proxy:
        with open(os.devnull, "rb") as devnull:
            if config.stdio is None and not config.tty:
                stdin = 0 if interactive else devnull.fileno()
                shield = relay.shield((stdin, 1, 2))
                config = config.replace(stdio=(stdin, 1, 2) if shield is None else shield.stdio)
            try:
                engine = start(
                    _networked(prepared, config),
                    runtime_dir=prepared.state.path("rt"),
                    reparent=True,
                )
            except BaseException:
                if shield is not None:
                    shield.finish()
                prepared.abandon()
                raise
        code: int | None = None
        try:
            proxy.attach(engine)
            if shield is not None:
                shield.start()
            prepared.state.mark_running(engine.pid)
            if engine.console is not None:
                from envkit.runtime import tty  # lazy: only with a terminal

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
            finish(prepared.state, code, None, prepared.network)
    return code


def start_detached(prepared: Prepared) -> st.ContainerState:
    """Hand the container to this home's monitor and return once its command runs.

    The monitor (:mod:`envkit.container.monitor`, started on demand) becomes the
    container's parent, keeps its log, records its exit code and removes ``--rm``
    containers; this process does its part of the start (id maps, networks) and leaves.
    Start failures come back here as :class:`StartError`.
    """
    # lazy: each start loads its own path (downward)
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
        except (OSError, MonitorError):
            # The monitor died at this moment (kill -9): the container runs and its
            # record says so; the next envkit command has a new monitor adopt it.
            connection.close()
    finally:
        if engine.console is not None:
            os.close(engine.console)
        if prepared.network is not None:
            prepared.network.close_ports()  # the port forwarder holds them now
    return record


def _log_pipes() -> tuple[int, int, int, int, int]:
    """stdin (/dev/null) and two pipes: ``(null, out_r, out_w, err_r, err_w)``."""
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    return null, out_r, out_w, err_r, err_w
