"""envkit's rootless networks: start-up of a published container and bulk TCP throughput.

- Time from ``envkit run -d -p HOST:80`` (the CLI, a busybox httpd image) to the first
  HTTP answer on the host port: cold (the namespace holder and egress daemon start
  with it, as for the first networked container) and warm (another networked container
  keeps them up).
- The median time to move :data:`SIZE` bytes through a published port (host client ->
  forwarder -> container in the holder's namespace) and between two sandbox containers
  on one network (veth -> bridge -> veth, no userspace in the path).

The peer is rootless podman (``--runtime runc``, overlay storage in a private
storage.conf) run as the unprivileged user :data:`PODMAN_USER`, the same busybox image
``podman load``-ed from the same archive. Where rootless podman cannot publish a port
(slirp4netns and pasta need /dev/net/tun, mode 0600 root on hosts like ours) the note
column says why, with podman's own error.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests import images
from tests.benchmarks.common import Result, median_time

SIZE = 256 * 1024 * 1024
RUNS = 3
START_RUNS = 5
PY = sys.executable
IMAGE = "busybox:1"
HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]
PODMAN_USER = "envkit-ci"

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, timeout: float = 20.0) -> None:
    """Poll ``GET /passwd`` on 127.0.0.1:``port`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/passwd")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.002)
        finally:
            conn.close()
    raise RuntimeError(f"no HTTP answer on 127.0.0.1:{port}")


def envkit_cli() -> list[str]:
    script = Path(sys.executable).parent / "envkit"
    return [str(script)] if script.exists() else [PY, "-m", "envkit"]


def first_answer(archive: Path, warm: bool) -> float:
    """Median time from ``envkit run -d -p`` to the first HTTP answer (ENVKIT_HOME set)."""
    cli = envkit_cli()
    subprocess.run([*cli, "load", "-i", str(archive)], check=True, capture_output=True)
    keeper = []
    if warm:
        keeper = ["--name", "keeper", "--network", "envkit", IMAGE, "sleep", "600"]
        subprocess.run([*cli, "run", "-d", *keeper], check=True, capture_output=True)
    names = iter(f"web{i}" for i in range(100))
    current: list[str] = []

    def start() -> None:
        name, port = next(names), free_port()
        current[:] = [name]
        argv = [*cli, "run", "-d", "--name", name, "-p", f"{port}:80", IMAGE, *HTTPD]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        wait_http(port)

    def stop() -> None:
        if current:
            subprocess.run([*cli, "rm", "-f", *current], check=True, capture_output=True)
            current.clear()

    try:
        times = []
        for _ in range(START_RUNS):
            times.append(median_time(start, 1))
            stop()
        return sorted(times)[len(times) // 2]
    finally:
        stop()
        if warm:
            subprocess.run([*cli, "rm", "-f", "keeper"], check=False, capture_output=True)


class Podman:
    """Rootless podman as :data:`PODMAN_USER` (this user when not root), private storage."""

    def __init__(self, work: Path, archive: Path) -> None:
        self.work = work
        self.as_root = os.geteuid() == 0
        (work / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{work}/graph"\nrunroot = "{work}/run"\n'
        )
        (work / "xdg").mkdir(mode=0o700)
        shutil.copy(archive, work / "image.tar")
        if self.as_root:
            user = pwd.getpwnam(PODMAN_USER)
            os.chmod(work.parent, 0o755)
            for path in (work, *work.rglob("*")):
                os.chown(path, user.pw_uid, user.pw_gid)

    def run(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        env = [
            f"HOME={self.work}",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            f"CONTAINERS_STORAGE_CONF={self.work}/storage.conf",
            f"XDG_RUNTIME_DIR={self.work}/xdg",
        ]
        prefix = ["runuser", "-u", PODMAN_USER, "--"] if self.as_root else []
        cmd = [*prefix, "env", "-i", *env, "podman", "--runtime", "runc", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def first_answer(self) -> tuple[float | None, str]:
        """Median time from ``podman run -d -p`` to the first HTTP answer, or why not."""
        loaded = self.run(["load", "-i", str(self.work / "image.tar")])
        if loaded.returncode != 0:
            return None, "podman load failed: " + loaded.stderr.strip().splitlines()[-1]
        times = []
        for _ in range(START_RUNS):
            port = free_port()
            start = time.perf_counter()
            done = self.run(["run", "-d", "--rm", "-p", f"127.0.0.1:{port}:80", IMAGE, *HTTPD])
            if done.returncode != 0:
                return None, "rootless podman -p failed: " + _first_error(done.stderr)
            wait_http(port)
            times.append(time.perf_counter() - start)
            self.run(["rm", "-f", "-t", "0", done.stdout.strip()])
        return sorted(times)[len(times) // 2], ""

    def reset(self) -> None:
        self.run(["system", "reset", "-f"])


def _first_error(stderr: str) -> str:
    text = stderr.strip().replace("\\n", "\n")
    return text.splitlines()[0][:160] if text else "no message"


def podman_peer(tmp: Path, archive: Path) -> tuple[float | None, str]:
    if shutil.which("podman") is None:
        return None, "podman not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PODMAN_USER)
        except KeyError:
            return None, f"no user {PODMAN_USER} to run rootless podman as"
    podman = Podman(tmp / "podman", archive)
    try:
        return podman.first_answer()
    finally:
        with contextlib.suppress(Exception):
            podman.reset()


def mib_s(seconds: float) -> str:
    return f"{SIZE / seconds / 2**20:.0f} MiB/s for {SIZE // 2**20} MiB"


def main() -> list[Result]:
    from envkit import network
    from envkit.network.sandbox import Sandbox

    saved_home = os.environ.get("ENVKIT_HOME")
    with tempfile.TemporaryDirectory(prefix="envkit-bench-net-") as tmp:
        os.chmod(tmp, 0o755)
        archive = Path(tmp) / "busybox.tar"
        images.build_archive(archive, [images.busybox_layer()], ref=IMAGE)
        (Path(tmp) / "podman").mkdir()
        peer_s, why = podman_peer(Path(tmp), archive)
        os.environ["ENVKIT_HOME"] = str(Path(tmp) / "home")
        try:
            cold = first_answer(archive, warm=False)
            warm = first_answer(archive, warm=True)
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
            if saved_home is None:
                os.environ.pop("ENVKIT_HOME", None)
            else:
                os.environ["ENVKIT_HOME"] = saved_home
    peer_note = f"; peer: {why}" if why else ""
    return [
        Result(
            "network: run -d -p to first HTTP answer",
            cold,
            peer="podman",
            peer_s=peer_s,
            note="cold: holder and egress daemon start too" + peer_note,
        ),
        Result(
            "network: run -d -p to first HTTP, warm",
            warm,
            note="another container keeps the holder up",
        ),
        Result(
            "network: TCP bulk via published port", published, note=mib_s(published) + peer_note
        ),
        Result(
            "network: TCP bulk between two containers", between, note=mib_s(between) + peer_note
        ),
    ]
