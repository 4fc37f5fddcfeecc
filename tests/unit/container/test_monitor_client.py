"""The caller's side of the container monitor, against a monitor that died."""

from __future__ import annotations

import socket

import pytest

from envkit.container.monitor_client import MonitorConnection
from envkit.errors import MonitorError


@pytest.mark.parametrize("how", ["closed", "reset"])
def test_a_monitor_killed_mid_request_is_a_monitor_error(envkit_home: object, how: str) -> None:
    """Not a BrokenPipeError or ConnectionResetError: those escaped to the CLI, which
    took the EPIPE for its own output's (`| head`) and exited 0 without a word."""
    ours, monitor = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if how == "reset":
        monitor.send(b"")  # never read: closing with unread data resets our side
        ours.send(b"x")
    monitor.close()
    connection = MonitorConnection(ours, 0, 0)
    with pytest.raises(MonitorError, match="went away"):
        connection.request({"op": "ping"})
    connection.close()
