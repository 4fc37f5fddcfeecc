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

Samples of envkit and podman are taken in turns (one start of each, then the next
round), so that the drifting load of a shared host weighs on both alike.

Throughput peers run the same Python sink and sender as envkit's sandboxes: a container
of the host's root filesystem (``--rootfs /:O``, an overlay, nothing written to the host).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import pwd
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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


class Envkit:
    """``envkit run -d -p`` in a home of its own: ``warm`` keeps a networked container up,
    so the holder and egress daemon are running before each start."""

    def __init__(self, home: Path, archive: Path, warm: bool) -> None:
        self.env = {**os.environ, "ENVKIT_HOME": str(home)}
        self.warm = warm
        self.names = (f"web{i}" for i in range(1000))
        self.cli(["load", "-i", str(archive)])
        if warm:
            self.cli(
                ["run", "-d", "--name", "keeper", "--network", "envkit", IMAGE, "sleep", "900"]
            )

    def cli(self, argv: Sequence[str]) -> None:
        script = Path(sys.executable).parent / "envkit"
        cmd = [str(script)] if script.exists() else [PY, "-m", "envkit"]
        subprocess.run([*cmd, *argv], check=True, capture_output=True, env=self.env)

    def first_answer(self) -> float:
        """One start: seconds from ``envkit run -d -p`` to the first HTTP answer."""
        name, port = next(self.names), free_port()
        start = time.perf_counter()
        self.cli(["run", "-d", "--name", name, "-p", f"{port}:80", IMAGE, *HTTPD])
        wait_http(port)
        elapsed = time.perf_counter() - start
        self.cli(["rm", "-f", name])
        return elapsed

    def close(self) -> None:
        if self.warm:
            with contextlib.suppress(subprocess.CalledProcessError):
                self.cli(["rm", "-f", "keeper"])


def cli_time(env: dict[str, str], argv: Sequence[str]) -> float:
    """Seconds one ``envkit`` command takes (it must succeed)."""
    start = time.perf_counter()
    subprocess.run([*envkit_cli(), *argv], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def start_figures(tmp: Path, archive: Path, runs: int = 7) -> dict[str, float]:
    """The start costs issue 20 bounds (medians of ``runs``, seconds):

    - ``second``: ``run -d --network`` of a container while another keeps the network
      process warm;
    - ``first``: ``run -d --network`` when no network process runs (it starts);
    - ``warm_http`` / ``cold_http``: ``run -d -p`` to the first HTTP answer, warm / cold.
    """
    home = tmp / "starts"
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    subprocess.run(
        [*envkit_cli(), "load", "-i", str(archive)], check=True, env=env, capture_output=True
    )
    subprocess.run(
        [*envkit_cli(), "network", "create", "b"], check=True, env=env, capture_output=True
    )
    found: dict[str, list[float]] = {"second": [], "first": []}
    names = (f"c{i}" for i in range(10000))
    for _ in range(runs):
        keeper, other = next(names), next(names)
        found["first"].append(
            cli_time(env, ["run", "-d", "--name", keeper, "--network", "b", IMAGE, "sleep", "60"])
        )
        found["second"].append(
            cli_time(env, ["run", "-d", "--name", other, "--network", "b", IMAGE, "sleep", "60"])
        )
        cli_time(env, ["rm", "-f", keeper, other])
    cold = Envkit(tmp / "cold-starts", archive, warm=False)
    warm = Envkit(tmp / "warm-starts", archive, warm=True)
    try:
        http = interleaved({"cold_http": cold.first_answer, "warm_http": warm.first_answer}, runs)
    finally:
        cold.close()
        warm.close()
    return {**{k: statistics.median(v) for k, v in found.items()}, **http}


def interleaved(samplers: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """The median of ``runs`` samples of each sampler, taken in turns: on a shared host the
    load drifts, and it should weigh on every contender alike."""
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    for _ in range(runs):
        for name, sample in samplers.items():
            samples[name].append(sample())
    return {name: statistics.median(found) for name, found in samples.items()}


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
        """One start: seconds from ``podman run -d -p`` to the first HTTP answer."""
        port = free_port()
        argv = ["run", "-d", "--rm", *self.limits, "--network", network]
        argv += ["-p", f"127.0.0.1:{port}:80", IMAGE, *HTTPD]
        start = time.perf_counter()
        ident = self.check(argv)
        wait_http(port)
        elapsed = time.perf_counter() - start
        self.run(["rm", "-f", "-t", "0", ident])
        return elapsed

    def python(self, name: str, network: str, argv: Sequence[str], *extra: str) -> str:
        """Start ``python3 ARGV`` detached in a container of the host's root filesystem."""
        run = ["run", "-d", "--name", name, *self.limits, "--network", network, *extra]
        return self.check([*run, "--rootfs", "/:O", "/usr/bin/python3", *argv])

    @contextlib.contextmanager
    def sink(self, name: str, network: str) -> Iterator[tuple[int, str]]:
        """A :data:`SINK` container on ``network``: its published host port and address."""
        port = free_port()
        self.python(name, network, ["-c", SINK], "-p", f"127.0.0.1:{port}:9000")
        try:
            wait_port(port)
            template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
            yield port, self.check(["inspect", "-f", template, name])
        finally:
            self.run(["rm", "-f", "-t", "0", name])

    def between(self, tmp: Path, network: str, sink_ip: str) -> float:
        """Seconds for one :data:`SIZE` transfer from a sender container to ``sink_ip``."""
        out = tmp / "podman-between"
        argv = ["-c", SENDER, str(out), sink_ip, str(SIZE), "1"]
        self.python("sender", network, argv, "-v", f"{tmp}:{tmp}")
        try:
            self.check(["wait", "sender"], timeout=300)
        finally:
            self.run(["rm", "-f", "-t", "0", "sender"])
        return float(out.read_text())

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


def choose_podman(tmp: Path, archive: Path) -> tuple[Podman | None, str]:
    """The podman that can publish a port here: rootless if it can, else (as root)
    rootful; or ``None`` and why not. The reason rootless failed is kept for the notes."""
    if shutil.which("podman") is None:
        return None, "podman not installed"
    why = ""
    try:
        if os.geteuid() == 0:
            pwd.getpwnam(PODMAN_USER)
        rootless = Podman(tmp / "podman-rootless", archive, rootless=True)
        try:
            rootless.load()
            rootless.first_answer("slirp4netns")
            rootless.check(["network", "create", "benchnet"])
            return rootless, ""
        except PeerError as exc:
            why = f"rootless podman -p failed: {exc}"
            with contextlib.suppress(Exception):
                rootless.reset()
    except KeyError:
        why = f"no user {PODMAN_USER} to run rootless podman as"
    if os.geteuid() != 0:
        return None, why
    rootful = Podman(tmp / "podman-root", archive, rootless=False)
    rootful.load()
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}.0/24"
    rootful.check(["network", "create", "--subnet", subnet, "benchnet"])
    return rootful, why


#: What each podman network mode is, for the notes: rootful, then rootless.
MODES = {
    "slirp4netns": "slirp4netns + rootlessport (rootless podman's data path)",
    "benchnet": "netavark bridge + iptables DNAT",
}
ROOTLESS_MODES = {
    "slirp4netns": "slirp4netns + rootlessport",
    "benchnet": "its user network (bridge in its rootless netns, rootlessport)",
}


def mib_s(seconds: float) -> str:
    return f"{SIZE / seconds / 2**20:.0f} MiB/s for {SIZE // 2**20} MiB"


def main() -> list[Result]:
    from envkit import network
    from envkit.network.sandbox import Sandbox

    saved_home = os.environ.get("ENVKIT_HOME")
    with tempfile.TemporaryDirectory(prefix="envkit-bench-net-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        archive = tmp / "busybox.tar"
        images.build_archive(archive, [images.busybox_layer()], ref=IMAGE)
        podman, why = choose_podman(tmp, archive)
        kind = "" if podman is None else "rootless" if podman.rootless else "rootful"
        cold = Envkit(tmp / "cold", archive, warm=False)
        warm = Envkit(tmp / "warm", archive, warm=True)
        os.environ["ENVKIT_HOME"] = str(tmp / "home")
        try:
            samplers = {"cold": cold.first_answer, "warm": warm.first_answer}
            if podman is not None:
                for mode in MODES:
                    try:  # a mode this host's podman cannot use (no slirp4netns) is left out
                        podman.first_answer(mode)
                    except PeerError as exc:
                        why = f"{why}; podman {mode}: {exc}".strip("; ")
                        continue
                    samplers[mode] = functools.partial(podman.first_answer, mode)
            starts = interleaved(samplers, START_RUNS)
            network.create("bench")
            with contextlib.ExitStack() as stack:
                stack.enter_context(Sandbox("sink", [PY, "-c", SINK], ["bench"]))
                (mapping,) = network.publish("sink", ["0:9000"])
                wait_port(mapping.host_port)
                out = tmp / "between"

                def envkit_between() -> float:
                    argv = [PY, "-c", SENDER, str(out), "sink", str(SIZE), "1"]
                    with Sandbox("sender", argv, ["bench"]) as sender:
                        os.waitpid(sender.pid, 0)
                    return float(out.read_text())

                bulk = {
                    "published": lambda: median_time(lambda: send(mapping.host_port), 1),
                    "between": envkit_between,
                }
                if podman is not None:
                    # Published: rootlessport's path; between: the bridge (rootless podman
                    # has both on one slirp4netns network of its own).
                    published_mode = "slirp4netns" if "slirp4netns" in samplers else "benchnet"
                    port, _ = stack.enter_context(podman.sink("sink-p", published_mode))
                    _, ip = stack.enter_context(podman.sink("sink-b", "benchnet"))
                    bulk["podman published"] = lambda: median_time(lambda: send(port), 1)
                    bulk["podman between"] = lambda: podman.between(tmp, "benchnet", ip)
                rates = interleaved(bulk, RUNS)
        finally:
            network.teardown()
            for home in (cold, warm):
                home.close()
            if podman is not None:
                with contextlib.suppress(Exception):
                    podman.reset()
            if saved_home is None:
                os.environ.pop("ENVKIT_HOME", None)
            else:
                os.environ["ENVKIT_HOME"] = saved_home
    peer_first = peer_note = published_note = between_note = ""
    peer_s: float | None = None
    if podman is not None:
        modes = {
            m: d for m, d in (ROOTLESS_MODES if podman.rootless else MODES).items() if m in starts
        }
        best = min(modes, key=lambda mode: starts[mode])
        peer_s = starts[best]
        others = ", ".join(f"{m} {starts[m] * 1000:.0f} ms" for m in modes)
        peer_first = f"{kind} podman, {modes[best]} (of: {others})"
        published_note = f"{kind} podman, {modes.get('slirp4netns', modes[best])}"
        bridge = "its user network" if podman.rootless else "netavark bridge"
        between_note = f"{kind} podman, {bridge} (veth -> bridge -> veth)"
    peer_note = "; ".join(n for n in (peer_first, why) if n) or "none"
    return [
        Result(
            "network: run -d -p to first HTTP answer",
            starts["cold"],
            peer="podman",
            peer_s=peer_s,
            note=f"cold: holder and egress daemon start too; peer: {peer_note}",
        ),
        Result(
            "network: run -d -p to first HTTP, warm",
            starts["warm"],
            peer="podman",
            peer_s=peer_s,
            note="another container keeps the holder up; peer as above; samples interleaved",
        ),
        Result(
            "network: TCP bulk via published port",
            rates["published"],
            peer="podman",
            peer_s=rates.get("podman published"),
            note=f"{mib_s(rates['published'])}; peer: "
            f"{_rate(rates.get('podman published'))}{published_note or why}",
        ),
        Result(
            "network: TCP bulk between two containers",
            rates["between"],
            peer="podman",
            peer_s=rates.get("podman between"),
            note=f"{mib_s(rates['between'])}; peer: "
            f"{_rate(rates.get('podman between'))}{between_note or why}",
        ),
    ]


def _rate(seconds: float | None) -> str:
    return f"{mib_s(seconds)}, " if seconds is not None else ""


def starts_only() -> None:
    """``python -m tests.benchmarks.bench_network --starts [--runs N]``: the start
    figures alone."""
    with tempfile.TemporaryDirectory(prefix="envkit-bench-net-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        archive = tmp / "busybox.tar"
        images.build_archive(archive, [images.busybox_layer()], ref=IMAGE)
        runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 7
        for name, seconds in start_figures(tmp, archive, runs).items():
            print(f"{name:10} {seconds * 1000:6.1f} ms")


if __name__ == "__main__":
    if "--starts" in sys.argv:
        starts_only()
    else:
        from tests.benchmarks.common import table

        print(table(main()))
