"""Bulk TCP throughput of envkit's rootless networks.

Two figures, each the median time to move :data:`SIZE` bytes: through a published port
(host client -> forwarder -> container in the holder's namespace) and between two
sandbox containers on one network (veth -> bridge -> veth, no userspace in the path).
The peer is rootless podman's rootlessport; it is not run here (it needs a rootless
podman set up for a user and an image with a sink server), so its column stays empty.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import Result, median_time

SIZE = 256 * 1024 * 1024
RUNS = 3
PY = sys.executable

# Reads everything from each connection on port 9000 and answers with the byte count.
SINK = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen()
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept()
    n = 0
    while (k := c.recv_into(buf)):
        n += k
    c.sendall(str(n).encode())
    c.close()
"""

# Sends SIZE bytes to host:9000 RUNS times, writes the median seconds to argv[1].
SENDER = """
import socket, statistics, sys, time
out, host, size, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chunk = b"x" * (1 << 20)
times = []
for _ in range(50):
    try:
        socket.create_connection((host, 9000), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
for _ in range(runs):
    start = time.perf_counter()
    with socket.create_connection((host, 9000)) as c:
        for _ in range(size // len(chunk)):
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        assert int(c.recv(100)) == size
    times.append(time.perf_counter() - start)
open(out, "w").write(str(statistics.median(times)))
"""


def send(port: int) -> None:
    chunk = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as c:
        for _ in range(SIZE // len(chunk)):
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        if int(c.recv(100)) != SIZE:
            raise RuntimeError("the sink did not get every byte")


def wait_port(port: int) -> None:
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.shutdown(socket.SHUT_WR)
                c.recv(10)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the sink never answered")


def mib_s(seconds: float) -> str:
    return f"{SIZE / seconds / 2**20:.0f} MiB/s for {SIZE // 2**20} MiB"


def main() -> list[Result]:
    from envkit import network
    from envkit.network.sandbox import Sandbox

    with tempfile.TemporaryDirectory(prefix="envkit-bench-net-") as tmp:
        os.chmod(tmp, 0o755)
        os.environ["ENVKIT_HOME"] = str(Path(tmp) / "home")
        try:
            network.create("bench")
            with Sandbox("sink", [PY, "-c", SINK], ["bench"]):
                (mapping,) = network.publish("sink", ["0:9000"])
                wait_port(mapping.host_port)
                published = median_time(lambda: send(mapping.host_port), RUNS)
                out = Path(tmp) / "between"
                argv = [PY, "-c", SENDER, str(out), "sink", str(SIZE), str(RUNS)]
                with Sandbox("sender", argv, ["bench"]) as sender:
                    os.waitpid(sender.pid, 0)
                between = float(out.read_text())
        finally:
            network.teardown()
    peer = "; rootless podman's rootlessport not run here"
    return [
        Result("network: TCP bulk via published port", published, note=mib_s(published) + peer),
        Result("network: TCP bulk between two containers", between, note=mib_s(between)),
    ]
