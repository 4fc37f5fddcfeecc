"""A three-service stack: ``up -d`` until every service runs and the one with a health
check is healthy, then ``down``; beside a rootful/rootless podman pod of the same three
containers on the same busybox archive (podman with runc: crun refuses this host's
hybrid cgroups).

envkit's figures go through the CLI (``envkit up -d`` / ``envkit down``, interpreter
start included), as a user types them. podman's pod is the lighter of its two stack
forms here (HOST-NOTES: pod 0.51/0.34 s, podman-compose 1.01/0.73 s); its health check
is one ``podman exec web true`` by hand: without systemd podman has no timer to run
checks, and ``podman healthcheck run`` fails here on the NPROC rlimit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from tests.benchmarks.bench_run import _host_ulimits, _unmount_below
from tests.benchmarks.common import Result, have, median_time, private_podman, sh

RUNS = 5
REF = "busybox:1"
STACK = """
from envkit import Healthcheck, Service, Stack

web = Service("web", image="busybox:1", command=["sleep", "600"],
              healthcheck=Healthcheck(["true"], interval=0.05))
a = Service("worker-a", image="busybox:1", command=["sleep", "600"], depends_on={web: "healthy"})
b = Service("worker-b", image="busybox:1", command=["sleep", "600"], depends_on=[web])
stack = Stack("bench", services=[web, a, b])
"""


def _envkit(base: Path, archive: Path) -> tuple[float, float]:
    env = {**os.environ, "ENVKIT_HOME": str(base / "home")}
    (base / "stack.py").write_text(STACK)

    def envkit(*argv: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "envkit", *argv],
            check=True,
            env=env,
            cwd=base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    envkit("load", "-q", "-i", str(archive))
    try:
        envkit("up", "-d")  # warm-up: layer snapshot, network holder binaries in cache
        envkit("down")
        up_s = median_time(lambda: envkit("up", "-d"), RUNS, setup=lambda: envkit("down"))
        envkit("down")
        down_s = median_time(lambda: envkit("down"), RUNS, setup=lambda: envkit("up", "-d"))
    finally:
        envkit("down")  # never leave a supervisor behind the temp dir
        from envkit import network

        saved = os.environ.get("ENVKIT_HOME")
        os.environ["ENVKIT_HOME"] = env["ENVKIT_HOME"]
        try:
            network.teardown()
        finally:
            if saved is None:
                os.environ.pop("ENVKIT_HOME", None)
            else:
                os.environ["ENVKIT_HOME"] = saved
    return up_s, down_s


def _podman(base: Path, archive: Path) -> tuple[float | None, float | None, str]:
    if not (have("podman") and have("runc")):
        return None, None, "podman or runc not installed"
    cmd = private_podman(base)
    try:
        loaded = subprocess.run(
            [*cmd, "load", "-q", "-i", str(archive)], check=True, capture_output=True, text=True
        )
        image = loaded.stdout.strip().rsplit(" ", 1)[-1]
        # NPROC at the host's own hard limit still fails in runc here; any lower works.
        limits = [*_host_ulimits(), "--ulimit", "nproc=1024:1024"]

        def up() -> None:
            sh([*cmd, "pod", "create", "--name", "bench", "--infra=false"])
            run = [*cmd, "run", "-d", "--pod", "bench", *limits]
            sh([*run, "--name", "web", image, "sleep", "600"])
            sh([*cmd, "exec", "web", "true"])  # the health check, run once
            sh([*run, "--name", "worker-a", image, "sleep", "600"])
            sh([*run, "--name", "worker-b", image, "sleep", "600"])

        def down() -> None:
            # -t 0: sleep as pid 1 ignores SIGTERM in podman (no init), which would time 10 s
            sh([*cmd, "pod", "rm", "-f", "-t", "0", "bench"])

        up()
        down()
        up_s = median_time(up, RUNS, setup=lambda: _quietly(down))
        down()
        down_s = median_time(down, RUNS, setup=up)
        return up_s, down_s, ""
    except subprocess.CalledProcessError as exc:
        err = exc.stderr if isinstance(exc.stderr, str) else exc.stderr.decode(errors="replace")
        return None, None, f"podman failed: {err.strip()[-160:]}"


def _quietly(fn: Callable[[], None]) -> None:
    """``fn``, whose failure (nothing to remove) does not matter."""
    with suppress(subprocess.CalledProcessError):
        fn()


def main() -> list[Result]:
    from tests.images import build_archive

    with tempfile.TemporaryDirectory(prefix="envkit-bench-stack-", ignore_cleanup_errors=True) as t:
        base = Path(t)
        base.chmod(0o755)
        archive = base / "busybox.tar"
        build_archive(archive, ref=REF)
        up_s, down_s = _envkit(base, archive)
        p_up, p_down, note = _podman(base, archive)
        _unmount_below(base)
        if os.geteuid() != 0 and have("podman"):
            store = [str(base / "podman"), str(base / "podman-run")]
            subprocess.run(["podman", "unshare", "rm", "-rf", *store], check=False)
    note = note or "same OCI archive, 3 x sleep; target: envkit <= 0.5x podman"
    return [
        Result("stack: envkit up -d (3 services, 1 healthy)", up_s, "podman pod", p_up, note),
        Result("stack: envkit down (3 services)", down_s, "podman pod rm -f", p_down),
    ]


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
