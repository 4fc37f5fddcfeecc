"""``Image.debian("bookworm", packages=["python3"])`` beside ``mmdebstrap --mode=unshare
--variant=minbase --include=python3 bookworm OUT.tar`` from the same mirror.

envkit is timed twice, each in a fresh ``ENVKIT_HOME``:

* bootstrap: the whole pipeline (Release, index, resolution, unpack, dpkg, layer) with
  the .debs already downloaded once (mmdebstrap's apt downloads them on every run,
  from the same mirror, so this is the side-by-side figure only for a fast mirror;
  the note gives the cold figure with downloads too),
* cached: a rebuild of the unchanged package set (one signed Release fetched).

One run each: a bootstrap takes tens of seconds and the host has two cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from tests.benchmarks.common import Result, have, sh

SUITE = "bookworm"
PACKAGES = ["python3"]


def _envkit(home: Path) -> float:
    os.environ["ENVKIT_HOME"] = str(home)
    from envkit.builtin.debian.source import DebianSource
    from envkit.store.store import Store

    start = time.perf_counter()
    DebianSource().provide(
        {"suite": SUITE, "packages": PACKAGES, "variant": "minbase", "mirror": None},
        Store.default(),
    )
    return time.perf_counter() - start


def main() -> list[Result]:
    from envkit.builtin.debian.mirror import choose_mirror

    saved = os.environ.get("ENVKIT_HOME")
    work = Path(tempfile.mkdtemp(prefix="envkit-bench-debian-"))
    try:
        cold = _envkit(work / "cold")
        warm_home = work / "warm"
        shutil.copytree(
            work / "cold" / "cache" / "debian" / "sha256", warm_home / "cache" / "debian" / "sha256"
        )
        warm = _envkit(warm_home)
        cached = _envkit(warm_home)
        peer_s = None
        if have("mmdebstrap"):
            start = time.perf_counter()
            sh(
                [
                    "mmdebstrap",
                    "--quiet",
                    "--mode=unshare",
                    "--variant=minbase",
                    "--include=" + ",".join(PACKAGES),
                    SUITE,
                    str(work / "out.tar"),
                    choose_mirror(None),
                ]
            )
            peer_s = time.perf_counter() - start
        return [
            Result(
                "debian bootstrap minbase+python3",
                warm,
                "mmdebstrap",
                peer_s,
                note=f"with downloads (cold cache): {cold:.1f} s",
            ),
            Result("debian rebuild, unchanged index", cached),
        ]
    finally:
        if saved is None:
            os.environ.pop("ENVKIT_HOME", None)
        else:
            os.environ["ENVKIT_HOME"] = saved
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
