"""Build-context hashing: ~5000 small files beside git, and a large context (256 MiB).

Cold: envkit hashes (and snapshots, see :mod:`envkit.build.context`) every file with no
index, against ``git add -A`` into a fresh repository (git hashes every file into its
object store and writes its index). Warm: envkit with its stat index from the previous
run, against ``git status`` (git's own stat-index fast path). The large context (32
files of 8 MiB) shows what reading the context once at the start of a build costs per
byte. The trees live in /dev/shm when it exists, so the disk is not what is measured.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from envkit.build.context import ContextIndex, hash_selection
from tests.benchmarks.common import Result, have, median_time, sh

FILES = 5000
BIG_FILES = 32
BIG_SIZE = 8 << 20
OLD = 1_600_000_000


def _make_tree(root: Path) -> None:
    for i in range(FILES):
        path = root / f"pkg{i % 50:02d}" / f"mod{i % 9}" / f"file{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"value_{i} = {i}\n".encode() * (1 + i % 40))
    (root / ".dockerignore").write_text("**/*.pyc\n.git\n")
    _age(root)


def _make_big_tree(root: Path) -> None:
    root.mkdir(parents=True)
    for i in range(BIG_FILES):
        (root / f"blob{i:02d}.bin").write_bytes(os.urandom(1 << 20) * (BIG_SIZE >> 20))
    _age(root)


def _age(root: Path) -> None:
    for path in root.rglob("*"):
        os.utime(path, (OLD, OLD))


def _forget(src: Path, home: Path) -> Callable[[], None]:
    """A setup dropping the context's index and snapshot, so that a run is cold."""
    index_path = ContextIndex(src).path

    def drop() -> None:
        index_path.unlink(missing_ok=True)
        shutil.rmtree(index_path.with_suffix(".files"), ignore_errors=True)

    return drop


def _hash_results(src: Path, home: Path, label: str) -> list[Result]:
    cold = median_time(lambda: hash_selection(src), setup=_forget(src, home))
    hash_selection(src)
    warm = median_time(lambda: hash_selection(src))
    return [
        Result(f"context hash cold ({label})", cold),
        Result(f"context hash warm ({label}, index)", warm),
    ]


def main() -> list[Result]:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="envkit-bench-ctx-", dir=base))
    saved_home = os.environ.get("ENVKIT_HOME")
    try:
        home = work / "home"
        os.environ["ENVKIT_HOME"] = str(home)
        src = work / "ctx"
        _make_tree(src)
        results = _hash_results(src, home, f"{FILES} files")
        if have("git"):
            repo = work / "repo"

            def fresh_repo() -> None:
                shutil.rmtree(repo, ignore_errors=True)
                shutil.copytree(src, repo)
                sh(["git", "-C", str(repo), "init", "-q"])

            git = ["git", "-C", str(repo)]
            results[0].peer, results[0].peer_s = (
                "git add -A",
                median_time(lambda: sh([*git, "add", "-A"]), setup=fresh_repo),
            )
            sh([*git, "status", "--porcelain"])
            results[1].peer, results[1].peer_s = (
                "git status",
                median_time(lambda: sh([*git, "status", "--porcelain"])),
            )
        big = work / "big"
        _make_big_tree(big)
        mib = BIG_FILES * BIG_SIZE >> 20
        results += _hash_results(big, home, f"{BIG_FILES} files, {mib} MiB")
        return results
    finally:
        if saved_home is None:
            os.environ.pop("ENVKIT_HOME", None)
        else:
            os.environ["ENVKIT_HOME"] = saved_home
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
