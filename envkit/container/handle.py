"""A container as users hold it: :class:`Container` (``envkit.run()``'s result, or
:func:`get` by name or id) and what the CLI's ``ps``, ``stop``, ``kill``, ``rm``, ``logs``
do through it; :func:`reap` finishes what killed envkit processes left."""

from __future__ import annotations

import os
import signal
import time

from envkit.container.execute import start_exec
from envkit.container.options import EXEC_KEYWORDS, check_keywords
from envkit.errors import EnvkitError, NetworkError, RuntimeError_, SpecError
from envkit.runtime import state as st

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import threading
    from collections.abc import Sequence
    from types import TracebackType

    from typing_extensions import Unpack

    from envkit.container.run_kwargs import ExecKwargs
    from envkit.network.attach import Attachment
    from envkit.network.ports import PortMapping
    from envkit.runtime.spawn import ContainerProcess as Engine

_SIGTERM, _SIGKILL = int(signal.SIGTERM), int(signal.SIGKILL)
#: Seconds ``remove(force=True)`` waits for a SIGKILLed process to be gone.
KILL_WAIT = 5.0


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
            finish(self._state, code, self._pump, self._network)
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

    def stop(self, timeout: float = 10, signal: int | str | None = None) -> int:
        """The stop signal, then SIGKILL after ``timeout`` seconds (``docker stop``); the
        exit code.

        The stop signal is ``signal`` (a number or a name: ``"SIGQUIT"``, ``"QUIT"``,
        ``docker stop -s``), else the container's own (``stop_signal=`` of
        ``envkit.run()`` / ``--stop-signal``, else its image's ``StopSignal``), else
        SIGTERM. A pid 1 without a handler for it (``sleep``, a shell for SIGTERM) never
        gets it (the kernel drops it for a namespace's init), so it gets SIGKILL at once
        instead of after the wait, with the same result (137) as docker's ``stop`` gives."""
        record = self.reload()
        sig = record.stop_signal or _SIGTERM
        if signal is not None:
            from envkit.spec.signals import number  # lazy: only with a signal given

            try:
                sig = number(signal)
            except ValueError as exc:
                raise SpecError("signal", str(exc), hint="e.g. SIGQUIT, QUIT or 3") from None
        if record.status == st.RUNNING and self.returncode is None:
            if sig == _SIGKILL or st.init_ignores(record.pid, sig):
                self.kill(_SIGKILL)
            else:
                self.kill(sig)
                if not st.wait_gone_or_ignored(record.pid, record.pid_start, sig, timeout):
                    self.kill(_SIGKILL)
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
            # As docker's rm -f: the process is gone when the container is. The wait can
            # end before it is (its monitor was killed and the record finished from
            # outside), and a SIGKILL takes effect when the process next runs.
            st.wait_gone(record.pid, record.pid_start, KILL_WAIT)
        st.remove(self.reload())

    def ports(self) -> list[PortMapping]:
        """Its published ports as bound (``envkit port NAME``); ``[]`` when it runs no more."""
        if not self.reload().running:
            return []
        from envkit.network import ports  # lazy: only for a running container

        return ports.published(self.name)

    def port(self, container_port: int, protocol: str = "tcp") -> int:
        """The host port that ``container_port`` is published on (port 0 resolved)."""
        for mapping in self.ports():
            if mapping.container_port == container_port and mapping.protocol == protocol:
                return mapping.host_port

        raise NetworkError(
            f"container {self.name} does not publish port {container_port}/{protocol}",
            hint=f"publish it: ports={{0: {container_port}}} or -p 0:{container_port}",
        )

    def logs(self) -> str:
        """The container's output so far (captured output only: see :func:`run`)."""
        from envkit.runtime import logs  # lazy: only when the log is read

        return logs.text(self._state.path("log"))

    def exec(self, cmd: Sequence[str], **options: Unpack[ExecKwargs]) -> ExecResult:
        """Run ``cmd`` in the running container; its exit code and output (stdout and
        stderr together; ``""`` when ``stdio`` was given). The keyword options (``env``,
        ``workdir``, ``user``, ``stdio``) are documented in
        :class:`envkit.container.run_kwargs.ExecKwargs`."""
        check_keywords("Container.exec", options, EXEC_KEYWORDS)
        env, workdir, user = options.get("env"), options.get("workdir"), options.get("user")
        stdio = options.get("stdio")
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
    # lazy: reap runs at most once per command (downward)
    from envkit import settings

    if os.path.exists(os.path.join(settings.home_dir(), "network", "holder.json")):
        from envkit import network  # lazy: only when a network holder exists

        network.reap()


def adopt_orphans() -> None:
    """Start a monitor when detached containers run without one: it adopts them."""
    if st.orphans():
        from envkit.container import monitor_client  # lazy: only when orphans run

        connection = monitor_client.connect()
        try:
            connection.request({"op": "adopt"})
        finally:
            connection.close()


def get(name_or_id: str) -> Container:
    """The container with that name, id or unique id prefix (``envkit ps -a`` lists them)."""
    reap()
    return Container(st.find(name_or_id))


def list_containers(all: bool = False) -> list[Container]:
    """Running containers (with ``all``: every container), oldest first."""
    reap()
    return [Container(s) for s in st.all_states() if all or s.status == st.RUNNING]


def finish(
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

            logging.getLogger("envkit.container").warning(
                "container %s: leaving its networks failed: %s", record.name, exc
            )
    if record.auto_remove:
        st.remove(record)
        # In memory too: a later wait() (a `with` block's exit) must not wait for a
        # record that is gone.
        record.status, record.exit_code = st.EXITED, code
        return
    record.mark_exited(code)


def pump_logs(path: str, streams: dict[int, str]) -> None:
    from envkit.runtime import logs  # lazy: only when output is captured

    writer = logs.LogWriter(path)
    try:
        logs.pump(writer, streams)
    finally:
        writer.close()
