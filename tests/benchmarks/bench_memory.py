"""Memory of what holds running containers: envkit's own processes beside podman's
per-container monitor (conmon), and the start of a detached container into a warm monitor.

PSS (proportional set size, /proc/PID/smaps_rollup) is what a process costs the machine:
pages shared with other processes count in part. envkit's processes are every process
whose environment names the benchmark's ``ENVKIT_HOME`` (the monitor, a stack's supervisor,
network processes); containers' commands get their image's environment, so they do not
count, as podman's figure counts conmon only.

The stack is measured in its steady state: after the network daemon's netlink worker
(:mod:`envkit.network.netlink_worker`, pyroute2) has let go, i.e. once
:data:`~envkit.network.netlink_client.IDLE_SECONDS` plus a margin have passed since
``up -d`` returned; by then the idle stack's supervisor is in its hold phase (after
:data:`~envkit.stack.holding.HOLD_AFTER` seconds, docs/dev/stack.md). The figure names
each kind of process (supervisor, netd, holder, and a netlink worker if one were still
there).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from envkit.network.netlink_client import IDLE_SECONDS
from tests.benchmarks.bench_run import _host_ulimits, _unmount_below
from tests.benchmarks.common import (
    Result,
    envkit_command,
    envkit_home,
    have,
    private_podman,
    sh,
)
from tests.integration.homes import envkit_processes

REF = "busybox:1"
COUNT = 10
STACK = """
from envkit import Network, Service, Stack

net = Network("membench")
services = [
    Service(f"s{i}", image="busybox:1", command=["sleep", "600"], networks=[net])
    for i in range(10)
]
stack = Stack("membench", services=services)
"""


def pss_mb(pids: list[int]) -> float:
    """Summed PSS of ``pids`` in MB (processes gone meanwhile count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


#: What a process of the home is, by a part of its command line (first match).
KINDS = (
    ("envkit/stack/hold.py", "supervisor (hold phase)"),
    ("envkit.stack", "supervisor"),
    ("envkit.network.netlink_worker", "netlink worker"),
    ("envkit.network.netd", "netd"),
    ("sleep", "holder"),
)


def pss_by_kind(pids: list[int]) -> dict[str, float]:
    """Summed PSS in MB of ``pids`` per kind of process (:data:`KINDS`, else "other")."""
    kinds: dict[str, float] = {}
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        kind = next((name for part, name in KINDS if part in cmdline), "other")
        kinds[kind] = kinds.get(kind, 0.0) + pss_mb([pid])
    return kinds


def conmon_pids(base: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"/usr/bin/conmon") and str(base).encode() in cmdline:
            found.append(int(entry))
    return found


def _settle() -> None:
    time.sleep(1.0)  # let freshly started processes finish their imports


def _worker_gone(home: Path) -> None:
    """Wait until the network daemon's netlink worker has let go (the steady state)."""
    time.sleep(IDLE_SECONDS)
    deadline = time.monotonic() + 10.0
    while "netlink worker" in pss_by_kind(envkit_processes(home)):
        if time.monotonic() > deadline:
            return  # measured with it, and the figure names it
        time.sleep(0.2)


def _envkit(base: Path) -> tuple[float, float, float, float, dict[str, float]]:
    """(PSS of 10 detached, MB per container from 11 to 20, median warm ``run -d`` s,
    PSS of a 10-service stack, that PSS per kind of process)."""
    cli = envkit_command()
    home = base / "home"
    starts = []
    with envkit_home(home):
        for i in range(2 * COUNT):
            begin = time.perf_counter()
            sh([*cli, "run", "-d", "--name", f"m{i}", REF, "sleep", "600"])
            starts.append(time.perf_counter() - begin)
            if i == COUNT - 1:
                _settle()
                ten = pss_mb(envkit_processes(home))
        _settle()
        twenty = pss_mb(envkit_processes(home))
        sh([*cli, "rm", "-f", *(f"m{i}" for i in range(2 * COUNT))])
        (base / "stack.py").write_text(STACK)
        subprocess.run([*cli, "up", "-d"], cwd=base, check=True, capture_output=True)
        try:
            _settle()
            _worker_gone(home)
            pids = envkit_processes(home)
            stack, kinds = pss_mb(pids), pss_by_kind(pids)
        finally:
            subprocess.run([*cli, "down"], cwd=base, check=True, capture_output=True)
    return ten, (twenty - ten) / COUNT, statistics.median(starts[1:]), stack, kinds


def _podman(base: Path, archive: Path) -> tuple[float | None, float | None, str]:
    if not (have("podman") and have("runc") and have("conmon")):
        return None, None, "podman, runc or conmon not installed"
    cmd = private_podman(base)
    try:
        loaded = subprocess.run(
            [*cmd, "load", "-q", "-i", str(archive)], check=True, capture_output=True, text=True
        )
        image = loaded.stdout.strip().rsplit(" ", 1)[-1]
        run = [*cmd, "run", "-d", "--network=none", *_host_ulimits(), image, "sleep", "600"]
        for _ in range(COUNT):
            sh(run)
        _settle()
        ten = pss_mb(conmon_pids(base))
        for _ in range(COUNT):
            sh(run)
        _settle()
        twenty = pss_mb(conmon_pids(base))
        sh([*cmd, "rm", "-f", "-t", "0", "--all"])
        return ten, (twenty - ten) / COUNT, ""
    except subprocess.CalledProcessError as exc:
        err = exc.stderr if isinstance(exc.stderr, str) else (exc.stderr or b"").decode()
        return None, None, f"podman failed: {err.strip()[-160:]}"


def main() -> list[Result]:
    from tests.images import build_archive

    with tempfile.TemporaryDirectory(prefix="envkit-bench-mem-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        archive = base / "busybox.tar"
        build_archive(archive, ref=REF)
        with envkit_home(base / "home"):
            sh([sys.executable, "-m", "envkit", "load", "-q", "-i", str(archive)])
        ten, each, warm_start, stack, kinds = _envkit(base)
        podman_ten, podman_each, note = _podman(base, archive)
        _unmount_below(base)
        if os.geteuid() != 0 and have("podman"):
            store = [str(base / "podman"), str(base / "podman-run")]
            subprocess.run(["podman", "unshare", "rm", "-rf", *store], check=False)
    return [
        Result(
            f"memory: {COUNT} detached containers (PSS)",
            ten,
            f"podman conmon x{COUNT}",
            podman_ten,
            note or "envkit: every process of its ENVKIT_HOME; target <= 10 MB",
            unit="MB",
        ),
        Result(
            "memory: each further container (11th-20th)",
            each,
            "podman conmon",
            podman_each,
            note or "target <= 0.6 MB",
            unit="MB",
        ),
        Result(
            "memory: 10-service stack with a network (PSS)",
            stack,
            note="target <= 15 MB; "
            + ", ".join(f"{kind} {mb:.1f}" for kind, mb in sorted(kinds.items())),
            unit="MB",
        ),
        Result(
            "run -d into a warm monitor (CLI)",
            warm_start,
            note="median of the 2nd-20th `envkit run -d IMAGE sleep 600`",
        ),
    ]
