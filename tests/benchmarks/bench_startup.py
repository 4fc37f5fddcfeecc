"""Start-up of this tree beside an earlier commit of envkit, in one run (issue 19: the
restructuring may cost no more than 5% on ``envkit --help``, ``envkit run --rm IMAGE
true`` and a warm ``envkit pull``).

The earlier commit (``ENVKIT_BENCH_BASELINE``, default :data:`BASELINE`: main before
the restructuring) is checked out with ``git worktree`` into a temporary directory; both
trees are byte-compiled first, run as ``python -m envkit`` with their own directory on
``PYTHONPATH`` and their own ``ENVKIT_HOME``, and timed in alternation (one run of each
per round, the order alternating), so a shared host's changing load weighs on both alike.
The peer column is the earlier commit: a ratio of 1.05 is the limit.
"""

from __future__ import annotations

import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tests import images
from tests.benchmarks.common import Result, have
from tests.integration.registry_server import RegistryServer, missing_tools

#: main just before issue 19's restructuring (layers, records, errors, plugins).
BASELINE = "792f053"
ROUNDS = 21
REPO = Path(__file__).resolve().parents[2]


class Tree:
    """One envkit checkout: how to run its CLI, in a home of its own."""

    def __init__(self, name: str, root: Path, home: Path) -> None:
        self.name, self.root, self.home = name, root, home
        compileall.compile_dir(root / "envkit", quiet=1)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "envkit", *args]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "ENVKIT_DEBUG"}
        env.update(PYTHONPATH=str(self.root), ENVKIT_HOME=str(self.home))
        return env

    def run(self, *args: str) -> None:
        subprocess.run(
            self.argv(*args), env=self.env(), check=True, cwd=self.home.parent,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip


def paired(ours: Callable[[], object], theirs: Callable[[], object]) -> tuple[float, float]:
    """Median wall times of ``ours`` and ``theirs`` over :data:`ROUNDS` alternating rounds."""
    mine: list[float] = []
    before: list[float] = []
    for i in range(ROUNDS):
        pair = [(ours, mine), (theirs, before)]
        for fn, into in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            fn()
            into.append(time.perf_counter() - start)
    return statistics.median(mine), statistics.median(before)


def main() -> list[Result]:
    baseline = os.environ.get("ENVKIT_BENCH_BASELINE", BASELINE)
    if not have("git") or not (REPO / ".git").exists():
        print("bench_startup: not a git checkout, skipped")
        return []
    with tempfile.TemporaryDirectory(prefix="envkit-bench-startup-") as tmp:
        base = Path(tmp)
        old_root = base / "baseline"
        added = subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_root), baseline],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if added.returncode != 0:
            print(f"bench_startup: no commit {baseline} here ({added.stderr.strip()}), skipped")
            return []
        try:
            return _measure(base, baseline, Tree("now", REPO, base / "home-now"),
                            Tree(baseline, old_root, base / "home-before"))  # fmt: skip
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_root)],
                check=False, capture_output=True,
            )  # fmt: skip


def _measure(base: Path, baseline: str, now: Tree, before: Tree) -> list[Result]:
    archive = base / "busybox.tar"
    images.build_archive(archive, ref="busybox:1")
    for tree in (now, before):
        tree.run("load", "-q", "-i", str(archive))
    peer = f"commit {baseline}"
    note = "target <= 1.05x (issue 19: no start-up regression)"
    results = []
    for label, args in (
        ("start-up: envkit --help", ("--help",)),
        ("start-up: envkit run --rm IMAGE true", ("run", "--rm", "busybox:1", "true")),
    ):
        ours, theirs = paired(partial(now.run, *args), partial(before.run, *args))
        results.append(Result(label, ours, peer, theirs, note))
    if missing_tools():
        print("bench_startup: docker-registry or its tools missing, warm pull skipped")
        return results
    registry = RegistryServer(base / "registry").start()
    try:
        ref = f"{registry.host}/bench/busybox:1"
        now.run("push", "-q", "busybox:1", ref)
        for tree in (now, before):
            tree.run("pull", "-q", ref)  # warm from here on: every blob is there
        ours, theirs = paired(
            lambda: now.run("pull", "-q", ref), lambda: before.run("pull", "-q", ref)
        )
        results.append(Result("start-up: envkit pull (warm)", ours, peer, theirs, note))
    finally:
        registry.stop()
        shutil.rmtree(registry.base, ignore_errors=True)
    return results


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
