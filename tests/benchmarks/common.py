"""Side-by-side timing of envkit and its nearest peer, for `nox -s bench`.

Each ``bench_*.py`` module defines ``main() -> list[Result]``; ``run_all.py`` runs them
in one process run and prints one table with the envkit/peer ratio of medians.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


def _compile_envkit() -> None:
    """Write envkit's bytecode caches first: with PYTHONDONTWRITEBYTECODE set (or sources
    edited since the last compile) every timed ``envkit`` command would compile the
    modules it imports, and time that instead of envkit."""
    import compileall

    compileall.compile_dir(Path(__file__).parents[2] / "envkit", quiet=1)


_compile_envkit()


@dataclass
class Result:
    """One capability timed for envkit and (when installed) its peer."""

    name: str
    envkit_s: float
    peer: str = ""
    peer_s: float | None = None
    note: str = ""
    #: ``"s"`` (shown in ms) or ``"MB"`` (a memory figure: ``envkit_s``/``peer_s`` hold MB).
    unit: str = "s"

    @property
    def ratio(self) -> float | None:
        if self.peer_s is None or self.peer_s == 0:
            return None
        return self.envkit_s / self.peer_s


def median_time(
    fn: Callable[[], object], runs: int = 5, setup: Callable[[], object] | None = None
) -> float:
    """Median wall time of ``fn`` over ``runs`` runs (``setup`` runs before each, untimed)."""
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def podman_pause_cleanup() -> Iterator[None]:
    """Rootless podman leaves a pause process (``catatonit -P``) holding its user
    namespace after it exits, and racing starts can leave two. Stop those the benchmarks
    started afterwards, never one that was running before."""
    if os.geteuid() == 0:
        yield
        return
    before = _pause_pids()
    try:
        yield
    finally:
        for pid in _pause_pids() - before:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def _pause_pids() -> set[int]:
    """This user's running rootless podman pause processes."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.geteuid():
                continue
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"catatonit\0-P"):
            pids.add(int(entry.name))
    return pids


def envkit_command() -> list[str]:
    """How a user runs envkit: the console script beside this interpreter (not
    ``python -m envkit``, which adds runpy's start-up to every timed command)."""
    import sys

    script = Path(sys.executable).with_name("envkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "envkit"]


def private_podman(base: Path) -> list[str]:
    """``podman`` with a store of its own under ``base`` (podman/, podman-run/), runc as
    its OCI runtime (crun refuses this host's hybrid cgroups), cgroupfs and no events.

    ``overlay.skip_mount_home``: otherwise podman makes its store a private bind mount of
    itself, and the clean-up process conmon starts after a container exits mounts it
    again after the benchmark has unmounted it, leaving a mount on the host per run.
    """
    cmd = ["podman", "--root", str(base / "podman"), "--runroot", str(base / "podman-run")]
    cmd += ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    # Rootless podman silently falls back to the slow vfs driver without the driver named.
    cmd += ["--storage-driver", "overlay", "--storage-opt", "overlay.skip_mount_home=true"]
    return cmd


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def sh(argv: Sequence[str]) -> None:
    """Run a peer's command, failing loudly (a broken peer must not time as fast)."""
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def table(results: Sequence[Result]) -> str:
    lines = [f"{'capability':44} {'envkit':>10} {'peer':>22} {'ratio':>7}"]
    for r in results:
        scale, unit = (1, "MB") if r.unit == "MB" else (1000, "ms")
        peer = (
            f"{r.peer} {r.peer_s * scale:.1f} {unit}" if r.peer_s is not None else "(not installed)"
        )
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        lines.append(f"{r.name:44} {r.envkit_s * scale:8.1f}{unit} {peer:>22} {ratio:>7}")
        if r.note:
            lines.append(f"    {r.note}")
    return "\n".join(lines)


@contextmanager
def envkit_home(path: Path) -> Iterator[None]:
    """``ENVKIT_HOME`` set to ``path`` in this process (and what it starts), then put back."""
    saved = os.environ.get("ENVKIT_HOME")
    os.environ["ENVKIT_HOME"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("ENVKIT_HOME", None)
        else:
            os.environ["ENVKIT_HOME"] = saved
