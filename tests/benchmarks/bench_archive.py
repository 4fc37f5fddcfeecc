"""envkit load/save of a multi-MB OCI archive vs skopeo copying the same image.

The image is busybox-static plus two layers of pseudo-random files (about 8 MB in all,
incompressible, so the work is hashing and copying). Both tools run as a user would: a
fresh process per run; envkit into a fresh ``ENVKIT_HOME``, skopeo into a fresh dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests import images
from tests.benchmarks.common import Result, have, median_time, sh

RUNS = 5
RANDOM_LAYER_BYTES = 4 << 20


def _envkit(home: Path, *args: str) -> None:
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "envkit", *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def main() -> list[Result]:
    if not images.have_busybox():
        print("bench_archive: busybox-static not installed, skipped")
        return []
    work = Path(tempfile.mkdtemp(prefix="envkit-bench-archive-"))
    try:
        return _run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path) -> list[Result]:
    layers = [
        images.busybox_layer(),
        images.random_layer(1, RANDOM_LAYER_BYTES),
        images.random_layer(2, RANDOM_LAYER_BYTES),
    ]
    layout = work / "layout"
    images.build_layout(layout, layers, ref="bench:1")
    archive = work / "bench.tar"
    images.tar_directory(layout, archive)
    size_mb = archive.stat().st_size / 1e6
    skopeo = have("skopeo")
    counter = iter(range(1_000_000))
    state: dict[str, Path] = {}

    def fresh(kind: str) -> None:
        path = work / f"{kind}-{next(counter)}"
        if path.exists():
            shutil.rmtree(path)
        state[kind] = path

    # A store holding the image, for the save runs.
    loaded_home = work / "loaded-home"
    _envkit(loaded_home, "load", str(archive))

    load_s = median_time(
        lambda: _envkit(state["home"], "load", str(archive)), RUNS, lambda: fresh("home")
    )
    save_s = median_time(
        lambda: _envkit(loaded_home, "save", "bench:1", "-o", str(state["out"])),
        RUNS,
        lambda: fresh("out"),
    )
    load_peer = save_peer = None
    if skopeo:
        load_peer = median_time(
            lambda: sh(["skopeo", "copy", f"oci-archive:{archive}", f"oci:{state['dir']}:bench:1"]),
            RUNS,
            lambda: fresh("dir"),
        )
        save_peer = median_time(
            lambda: sh(["skopeo", "copy", f"oci:{layout}:bench:1", f"oci-archive:{state['out']}"]),
            RUNS,
            lambda: fresh("out"),
        )
    # The library calls alone: the CLI runs above include interpreter start-up and imports.
    from envkit.oci.archive_read import load_archive
    from envkit.oci.archive_write import save_archive
    from envkit.store.store import Store

    lib_load_s = median_time(
        lambda: load_archive(archive, Store(state["home"] / "store")), RUNS, lambda: fresh("home")
    )
    loaded_store = Store(loaded_home / "store")
    lib_save_s = median_time(
        lambda: save_archive(loaded_store, ["bench:1"], state["out"]), RUNS, lambda: fresh("out")
    )
    note = f"{size_mb:.1f} MB archive, 3 layers; each run a fresh process and destination"
    lib_note = "in-process library call (no interpreter start-up) vs the skopeo process"
    results = [
        Result("archive load (OCI archive -> store)", load_s, "skopeo", load_peer, note),
        Result("archive save (store -> OCI archive)", save_s, "skopeo", save_peer),
        Result("archive load, library call", lib_load_s, "skopeo", load_peer, lib_note),
        Result("archive save, library call", lib_save_s, "skopeo", save_peer),
    ]
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        print(f"{r.name}: envkit {r.envkit_s * 1000:.0f} ms, ratio {ratio}")
    return results


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
