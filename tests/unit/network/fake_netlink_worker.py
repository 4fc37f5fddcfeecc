"""A stand-in for :mod:`envkit.network.netlink_worker` in the lifecycle tests: started
the same way (argv, socket, holder netns fd), it greets and serves with the worker's
own :func:`~envkit.network.netlink_worker.serve` loop, but needs no pyroute2 and no
namespace. ``FAKE_WORKER_START=fail`` in its environment makes it fail to start as a
worker without pyroute2 would."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from typing import Any

from envkit.errors import NetworkError
from envkit.network import control, netlink_worker


def _fail(args: dict[str, Any], fds: list[int]) -> Any:
    raise NetworkError(args["message"], hint=args.get("hint"))


def _read(args: dict[str, Any], fds: list[int]) -> Any:
    return [os.read(fd, 100).decode() for fd in fds]


def _caps(args: dict[str, Any], fds: list[int]) -> Any:
    with open("/proc/self/status") as f:
        effective = next(line for line in f if line.startswith("CapEff:"))
    mask = int(effective.split()[1], 16)
    return [cap for cap in range(64) if mask & (1 << cap)]


def run(parent: int, conn: socket.socket, netns: int) -> None:
    """As :func:`envkit.network.netlink_worker.run`, with the fake's requests."""
    netlink_worker.stay_with(parent)
    if os.environ.get("FAKE_WORKER_START") == "fail":
        control.send(conn, {"error": "the netlink worker failed to start: no pyroute2"})
        os._exit(1)
    control.send(conn, {"ok": os.getpid()})
    netlink_worker.serve(
        conn,
        {
            "pid": lambda args, fds: os.getpid(),
            "echo": lambda args, fds: args,
            "fail": _fail,
            "read": _read,
            "caps": _caps,
            "netns": lambda args, fds: os.readlink(f"/proc/self/fd/{netns}"),
            "exit": lambda args, fds: os._exit(args["code"]),
            "kill": lambda args, fds: os.kill(os.getpid(), signal.SIGKILL),
            "hang": lambda args, fds: time.sleep(60),
        },
    )
    os._exit(0)


def main(argv: list[str]) -> None:
    run(int(argv[1]), socket.socket(fileno=int(argv[2])), int(argv[3]))


if __name__ == "__main__":
    main(sys.argv)
