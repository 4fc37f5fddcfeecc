"""Build-context hashing of ~5000 files: envkit's context hasher beside git.

Cold: envkit hashes every file with no index, against ``git add -A`` into a fresh
repository (git hashes every file into its object store and writes its index). Warm:
envkit with its stat index from the previous run, against ``git status`` (git's own
stat-index fast path). The tree lives in /dev/shm when it exists, so the disk is not
what is measured.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from envkit.build.context import ContextIndex, hash_selection
from tests.benchmarks.common import Result, have, median_time, sh

FILES = 5000
OLD = 1_600_000_000


def _make_tree(root: Path) -> None:
    for i in range(FILES):
        path = root / f"pkg{i % 50:02d}" / f"mod{i % 9}" / f"file{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"value_{i} = {i}\n".encode() * (1 + i % 40))
    (root / ".dockerignore").write_text("**/*.pyc\n.git\n")
    for path in root.rglob("*"):
        os.utime(path, (OLD, OLD))


def main() -> list[Result]:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="envkit-bench-ctx-", dir=base))
    saved_home = os.environ.get("ENVKIT_HOME")
    try:
        os.environ["ENVKIT_HOME"] = str(work / "home")
        src = work / "ctx"
        _make_tree(src)
        index_path = ContextIndex(src).path

        def drop_index() -> None:
            index_path.unlink(missing_ok=True)

        cold = median_time(lambda: hash_selection(src), setup=drop_index)
        hash_selection(src)
        warm = median_time(lambda: hash_selection(src))

        results = [
            Result(f"context hash cold ({FILES} files)", cold),
            Result(f"context hash warm ({FILES} files, index)", warm),
        ]
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
