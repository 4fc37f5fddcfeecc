"""The caller's side of the container monitor (:mod:`envkit.container.monitor`).

:func:`connect` reaches this home's monitor, starting one when none runs;
:meth:`MonitorConnection.launcher` is the ``launcher`` :func:`envkit.runtime.spawn.start`
takes, so the monitor becomes the container's parent while this process does its part of
the start (id maps, networks); :meth:`MonitorConnection.started` hands the container over.
"""

from __future__ import annotations

import json
import os
import socket
import time

from envkit.container.monitor import MAX_MESSAGE, SOCKET, monitor_dir
from envkit.errors import MonitorError
from envkit.host.detached import spawn_module
from envkit.host.forking import FORK_LOCK
from envkit.host.unix_address import short_address

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

    from envkit.runtime.config import ContainerConfig

#: How long a caller waits for a monitor to come up (it is a fresh interpreter).
START_TIMEOUT = 10.0


class MonitorConnection:
    """One conversation with the monitor: one container's start."""

    def __init__(self, sock: socket.socket, pid: int, start: int) -> None:
        self.sock = sock
        #: The monitor's pid and start time: the container's supervisor in its record.
        self.pid, self.start = pid, start
        self._directory = ""

    def request(self, message: dict[str, Any], fds: list[int] = ()) -> dict[str, Any]:  # type: ignore[assignment]
        try:
            socket.send_fds(self.sock, [json.dumps(message).encode()], list(fds))
            data = self.sock.recv(MAX_MESSAGE)
        except (BrokenPipeError, ConnectionResetError):
            data = b""  # killed meanwhile: as an end of file (an EPIPE is not our output's)
        if not data:
            raise MonitorError(
                "the container monitor went away during the start",
                hint=f"its log is {os.path.join(monitor_dir(), 'monitor.log')}",
            )
        answer: dict[str, Any] = json.loads(data)
        if not answer.get("ok"):
            raise MonitorError(f"the container monitor refused: {answer.get('error')}")
        return answer

    def for_container(self, directory: str) -> MonitorConnection:
        """Set the container's dir (its log and output FIFOs go there)."""
        self._directory = directory
        return self

    def launcher(self, config: ContainerConfig, state_dir: str, fds: list[int]) -> int:
        """:func:`envkit.runtime.spawn.start`'s ``launcher``: the monitor forks the
        intermediate; its pid."""
        extra = []
        userns_fd = None
        if config.userns is not None:
            # A path of this process (/proc/self/fd/N, a holder's namespace): an fd
            # travels, a path might not mean the same there.
            userns_fd = os.open(config.userns, os.O_RDONLY | os.O_CLOEXEC)
            extra.append(userns_fd)
        try:
            answer = self.request(
                {
                    "op": "start",
                    "dir": self._directory,
                    "state_dir": state_dir,
                    "config": config.to_wire(),
                    "handshake_fds": len(fds),
                    "userns": userns_fd is not None,
                },
                [*fds, *extra],
            )
        finally:
            if userns_fd is not None:
                os.close(userns_fd)
        return int(answer["intermediate"])

    def started(self, init_pid: int, console: int | None = None) -> None:
        """The command runs and its record says so: the monitor holds it from now on."""
        self.request({"op": "started", "pid": init_pid}, [] if console is None else [console])
        self.close()

    def close(self) -> None:
        self.sock.close()


def connect() -> MonitorConnection:
    """A connection to this home's monitor, started first when none runs."""
    directory = monitor_dir()
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return _dial(directory)
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, MonitorError):
            # None runs, or the last one is leaving: it unlinks its socket on the way out.
            if time.monotonic() > deadline:
                raise MonitorError(
                    "the container monitor did not start",
                    hint=f"its log is {os.path.join(directory, 'monitor.log')}",
                ) from None
        if _spawn(directory) != b"ready":  # another one holds the home: it is coming or going
            time.sleep(0.005)


def _dial(directory: str) -> MonitorConnection:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        with short_address(os.path.join(directory, SOCKET)) as address:
            sock.connect(address)
        connection = MonitorConnection(sock, 0, 0)
        answer = connection.request({"op": "ping"})
    except BaseException:
        sock.close()
        raise
    connection.pid, connection.start = int(answer["pid"]), int(answer["start"])
    return connection


def _spawn(directory: str) -> bytes:
    """Start a monitor (:func:`envkit.host.detached.spawn_module`); what it said:
    ``ready``, ``busy`` (another one holds the home) or nothing."""
    with FORK_LOCK:
        ready_r, ready_w = os.pipe()
        try:
            env = {**os.environ, "ENVKIT_HOME": os.path.dirname(directory)}
            spawn_module("envkit.container.monitor", fds={3: ready_w}, env=env)
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
    with open(ready_r, "rb", closefd=True) as report:
        return report.read()
