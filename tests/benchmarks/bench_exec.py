"""``envkit exec NAME true`` into a running container beside ``podman exec``.

The exec path is what health checks use too: a helper forked from the caller that makes
itself unreachable from the container (not dumpable, command line wiped, fds closed),
joins the container's namespaces, and starts the command in a session of its own with
the container's privileges and seccomp filter. Both run the same busybox OCI archive
(envkit: a temp ``ENVKIT_HOME``; podman: a private store, runc).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.bench_run import _host_ulimits, _unmount_below, podman_timing
from tests.benchmarks.common import Result, envkit_command, envkit_home, have, median_time, sh

RUNS = 10
REF = "busybox:1"


def _podman(base: Path, archive: Path) -> tuple[float | None, str]:
    def timed(cmd: list[str], image: str) -> float:
        options = ["-d", "--name", "bench", "--network=none", "--init", *_host_ulimits()]
        sh([*cmd, "run", *options, image, "sleep", "600"])
        try:
            exec_ = [*cmd, "exec", "bench", "true"]
            sh(exec_)
            return median_time(lambda: sh(exec_), RUNS)
        finally:
            subprocess.run([*cmd, "rm", "-f", "-t", "0", "bench"], check=False, capture_output=True)

    return podman_timing(base, archive, timed)


def main() -> list[Result]:
    from envkit.container.execute import start_exec
    from envkit.container.handle import get
    from tests.images import build_archive

    with tempfile.TemporaryDirectory(
        prefix="envkit-bench-exec-", ignore_cleanup_errors=True
    ) as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        archive = base / "busybox.tar"
        build_archive(archive, ref=REF)
        with envkit_home(base / "home"):
            sh([sys.executable, "-m", "envkit", "load", "-q", "-i", str(archive)])
            sh([*envkit_command(), "run", "-d", "--init", "--name", "bench", REF, "sleep", "600"])
            try:
                cli = [*envkit_command(), "exec", "bench", "true"]
                sh(cli)
                cli_s = median_time(lambda: sh(cli), RUNS)
                record = get("bench").reload()
                with open(os.devnull, "rb") as null:
                    stdio = (null.fileno(), null.fileno(), null.fileno())
                    api_s = median_time(
                        lambda: start_exec(record, ["true"], stdio=stdio).wait(), RUNS
                    )
            finally:
                subprocess.run(
                    [*envkit_command(), "rm", "-f", "bench"], check=False, capture_output=True
                )
        podman_s, note = _podman(base, archive)
        _unmount_below(base)
        if os.geteuid() != 0 and have("podman"):
            store = [str(base / "podman"), str(base / "podman-run")]
            subprocess.run(["podman", "unshare", "rm", "-rf", *store], check=False)
    return [
        Result(
            "exec: envkit exec NAME true (CLI)",
            cli_s,
            "podman exec",
            podman_s,
            note
            or f"a running --init busybox container each; podman with runc; the API "
            f"(start_exec(...).wait(), what a health check runs) {api_s * 1000:.1f} ms",
        ),
    ]
