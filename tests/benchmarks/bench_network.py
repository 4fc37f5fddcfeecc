"""envkit's rootless networks: start-up of a published container and bulk TCP throughput.

- Time from ``envkit run -d -p HOST:80`` (the CLI, a busybox httpd image) to the first
  HTTP answer on the host port: cold (the namespace holder and egress daemon start
  with it, as for the first networked container) and warm (another networked container
  keeps them up).
- The median time to move :data:`SIZE` bytes through a published port (host client ->
  forwarder -> container in the holder's namespace) and between two sandbox containers
  on one network (veth -> bridge -> veth, no userspace in the path).

The peer is podman (``--runtime runc``, private storage, the same busybox image
``podman load``-ed from the same archive), in the best mode this host allows:

- rootless podman (as the unprivileged user :data:`PODMAN_USER`), where it can publish
  a port: slirp4netns and pasta need /dev/net/tun, mode 0600 root on hosts like ours,
  so there the note carries podman's own error and
- as root, podman in two network modes: ``--network slirp4netns`` (slirp4netns plus
  podman's ``rootlessport`` forwarder: the data path of rootless podman, which root may
  use because it can open /dev/net/tun) and its own netavark bridge (iptables DNAT to
  a veth, the rootful default). The first answer is the faster of the two, the
  published-port throughput is ``rootlessport``'s, and container to container goes over
  the bridge. The notes say which mode each figure comes from.

Throughput peers run the same Python sink and sender as envkit's sandboxes: a container
of the host's root filesystem (``--rootfs /:O``, an overlay, nothing written to the host).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
    """podman with private storage and network configs under ``work``: rootless as
    :data:`PODMAN_USER` (this user when not root), or rootful as root."""

    def __init__(self, work: Path, archive: Path, rootless: bool) -> None:
        self.work = work
        self.rootless = rootless
        work.mkdir()
        shutil.copy(archive, work / "image.tar")
        self.flags = ["--runtime", "runc", "--events-backend", "none"]
        self.flags += ["--network-config-dir", str(work / "networks")]
        if rootless:
            (work / "storage.conf").write_text(
                f'[storage]\ndriver = "overlay"\ngraphroot = "{work}/graph"\n'
                f'runroot = "{work}/run"\n'
            )
            (work / "xdg").mkdir(mode=0o700)
            if os.geteuid() == 0:
                user = pwd.getpwnam(PODMAN_USER)
                os.chmod(work.parent, 0o755)
                for path in (work, *work.rglob("*")):
                    os.chown(path, user.pw_uid, user.pw_gid)
        else:
            self.flags += ["--root", f"{work}/graph", "--runroot", f"{work}/run"]
            self.flags += ["--cgroup-manager", "cgroupfs"]
        # podman raises NOFILE/NPROC above this host's hard limits unless told not to.
        self.limits = ["--ulimit", "nproc=1024:1024"]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY:
            self.limits += ["--ulimit", f"nofile={soft}:{hard}"]

    def run(self, argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if not self.rootless:
            cmd = ["podman", *self.flags, *argv]
            return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        env = [
            f"HOME={self.work}",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            f"CONTAINERS_STORAGE_CONF={self.work}/storage.conf",
            f"XDG_RUNTIME_DIR={self.work}/xdg",
        ]
        prefix = ["runuser", "-u", PODMAN_USER, "--"] if os.geteuid() == 0 else []
        cmd = [*prefix, "env", "-i", *env, "podman", *self.flags, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)

    def check(self, argv: Sequence[str], timeout: float = 120) -> str:
        """``run`` that raises :class:`PeerError` with podman's message on failure."""
        done = self.run(argv, timeout)
        if done.returncode != 0:
            raise PeerError(_first_error(done.stderr))
        return done.stdout.strip()

    def load(self) -> None:
        self.check(["load", "-i", str(self.work / "image.tar")])

    def first_answer(self, network: str) -> float:
        """Median time from ``podman run -d -p`` to the first HTTP answer."""
        times = []
        for _ in range(START_RUNS):
            port = free_port()
            argv = ["run", "-d", "--rm", *self.limits, "--network", network]
            argv += ["-p", f"127.0.0.1:{port}:80", IMAGE, *HTTPD]
            start = time.perf_counter()
            ident = self.check(argv)
            wait_http(port)
            times.append(time.perf_counter() - start)
            self.run(["rm", "-f", "-t", "0", ident])
        return sorted(times)[len(times) // 2]

    def python(self, name: str, network: str, argv: Sequence[str], *extra: str) -> str:
        """Start ``python3 ARGV`` detached in a container of the host's root filesystem."""
        run = ["run", "-d", "--name", name, *self.limits, "--network", network, *extra]
        return self.check([*run, "--rootfs", "/:O", "/usr/bin/python3", *argv])

    def reset(self) -> None:
        self.run(["rm", "-a", "-f", "-t", "0"])
        self.run(["system", "reset", "-f"])
        if not self.rootless:
            _unmount_below(self.work)


class PeerError(Exception):
    """podman failed; the message is podman's own first line."""


def _first_error(stderr: str) -> str:
    text = stderr.strip().replace("\\n", "\n")
    return text.splitlines()[0][:160] if text else "no message"


def _unmount_below(base: Path) -> None:
    """Lazily unmount what rootful podman's storage left mounted under ``base``."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(f"{base}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@dataclass
class PeerFigures:
    """podman's figures (``None``: not measured) and what each one is."""

    first: float | None = None
    published: float | None = None
    between: float | None = None
    first_note: str = ""
    published_note: str = ""
    between_note: str = ""


def rootless_peer(tmp: Path, archive: Path) -> tuple[PeerFigures | None, str]:
    """Rootless podman's figures, or ``None`` and why it cannot publish a port here."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PODMAN_USER)
        except KeyError:
            return None, f"no user {PODMAN_USER} to run rootless podman as"
    podman = Podman(tmp / "podman-rootless", archive, rootless=True)
    try:
        podman.load()
        first = podman.first_answer("slirp4netns")
        podman.check(["network", "create", "benchnet"])
        published, between = throughput(podman, tmp, "benchnet", "benchnet")
    except PeerError as exc:
        return None, f"rootless podman -p failed: {exc}"
    finally:
        with contextlib.suppress(Exception):
            podman.reset()
    note = "rootless podman (slirp4netns, rootlessport)"
    return PeerFigures(first, published, between, note, note, note + ", its user network"), ""


def rootful_peer(tmp: Path, archive: Path) -> PeerFigures:
    """podman as root: slirp4netns + rootlessport, and its netavark bridge."""
    podman = Podman(tmp / "podman-root", archive, rootless=False)
    try:
        podman.load()
        subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}.0/24"
        podman.check(["network", "create", "--subnet", subnet, "benchnet"])
        by_mode = {mode: podman.first_answer(mode) for mode in ("slirp4netns", "benchnet")}
        published, _ = throughput(podman, tmp, "slirp4netns", None)
        _, between = throughput(podman, tmp, "benchnet", "benchnet")
    finally:
        with contextlib.suppress(Exception):
            podman.reset()
    best = min(by_mode, key=lambda mode: by_mode[mode])
    modes = {"slirp4netns": "slirp4netns + rootlessport", "benchnet": "netavark bridge + DNAT"}
    others = ", ".join(f"{modes[m]} {by_mode[m] * 1000:.0f} ms" for m in by_mode)
    return PeerFigures(
        by_mode[best],
        published,
        between,
        f"rootful podman, {modes[best]} (of {others})",
        "rootful podman, slirp4netns + rootlessport (rootless podman's data path)",
        "rootful podman, netavark bridge (veth -> bridge -> veth)",
    )


def throughput(
    podman: Podman, tmp: Path, sink_net: str, sender_net: str | None
) -> tuple[float | None, float | None]:
    """Median seconds for :data:`SIZE` bytes through a published port of a podman sink,
    and (with ``sender_net``) from a second container on that network."""
    port = free_port()
    podman.python("sink", sink_net, ["-c", SINK], "-p", f"127.0.0.1:{port}:9000")
    try:
        wait_port(port)
        published = median_time(lambda: send(port), RUNS)
        between = None
        if sender_net is not None:
            sink_ip = podman.check(
                [
                    "inspect",
                    "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    "sink",
                ]
            )
            out = tmp / "podman-between"
            argv = ["-c", SENDER, str(out), sink_ip, str(SIZE), str(RUNS)]
            podman.python("sender", sender_net, argv, "-v", f"{tmp}:{tmp}")
            podman.check(["wait", "sender"], timeout=300)
            podman.run(["rm", "-f", "-t", "0", "sender"])
            between = float(out.read_text())
    finally:
        podman.run(["rm", "-f", "-t", "0", "sink"])
    return published, between


def podman_peer(tmp: Path, archive: Path) -> PeerFigures:
    """The best podman figures this host allows (see the module's docstring)."""
    if shutil.which("podman") is None:
        why = "podman not installed"
        return PeerFigures(first_note=why, published_note=why, between_note=why)
    rootless, why = rootless_peer(tmp, archive)
    if rootless is not None:
        return rootless
    if os.geteuid() != 0:
        return PeerFigures(first_note=why, published_note=why, between_note=why)
    figures = rootful_peer(tmp, archive)
    figures.first_note += f"; {why}"
    return figures


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
        peer = podman_peer(Path(tmp), archive)
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
    return [
        Result(
            "network: run -d -p to first HTTP answer",
            cold,
            peer="podman",
            peer_s=peer.first,
            note=f"cold: holder and egress daemon start too; peer: {peer.first_note}",
        ),
        Result(
            "network: run -d -p to first HTTP, warm",
            warm,
            peer="podman",
            peer_s=peer.first,
            note="another container keeps the holder up; peer as above",
        ),
        Result(
            "network: TCP bulk via published port",
            published,
            peer="podman",
            peer_s=peer.published,
            note=f"{mib_s(published)}; peer: {_rate(peer.published)}{peer.published_note}",
        ),
        Result(
            "network: TCP bulk between two containers",
            between,
            peer="podman",
            peer_s=peer.between,
            note=f"{mib_s(between)}; peer: {_rate(peer.between)}{peer.between_note}",
        ),
    ]


def _rate(seconds: float | None) -> str:
    return f"{mib_s(seconds)}, " if seconds is not None else ""


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
