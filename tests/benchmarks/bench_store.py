"""The store's listing and inspect commands vs podman's, over the same images.

Both hold the same 20 tagged images (a shared busybox layer plus a small layer of their own); podman
uses a private ``--root`` with the vfs driver so the machine's own storage is untouched.
Each run is a fresh process, as a user types it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests import images
from tests.benchmarks.common import Result, have, median_time, sh

RUNS = 7
COUNT = 20


def main() -> list[Result]:
    if not images.have_busybox():
        print("bench_store: busybox-static not installed, skipped")
        return []
    work = Path(tempfile.mkdtemp(prefix="envkit-bench-store-"))
    try:
        return _run(work)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def _run(work: Path) -> list[Result]:
    home = work / "home"
    env = {**os.environ, "ENVKIT_HOME": str(home)}

    def envkit(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "envkit", *args], check=True, env=env, stdout=subprocess.DEVNULL
        )

    layer = images.busybox_layer()
    archives = []
    for i in range(COUNT):
        layout = work / f"layout{i}"
        images.build_layout(layout, [layer, images.random_layer(i, 4096)], ref=f"bench{i}:1")
        archive = work / f"img{i}.tar"
        images.tar_directory(layout, archive)
        archives.append(archive)
        envkit("load", str(archive))

    podman = have("podman")
    base = ["podman", "--root", str(work / "p-root"), "--runroot", str(work / "p-run")]
    base += ["--storage-driver", "vfs"]
    if podman:
        for archive in archives:
            sh([*base, "load", "-q", "-i", str(archive)])

    results = []
    cases = [
        ("store: images (20 images)", ["images"], ["images"]),
        ("store: inspect one image", ["inspect", "bench7:1"], ["image", "inspect", "bench7:1"]),
        ("store: tag", ["tag", "bench3:1", "other:1"], ["tag", "bench3:1", "other:1"]),
    ]
    for name, ours, theirs in cases:
        envkit_s = median_time(functools.partial(envkit, *ours), RUNS)
        peer_s = median_time(functools.partial(sh, [*base, *theirs]), RUNS) if podman else None
        results.append(Result(name, envkit_s, "podman", peer_s))
    return results


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
