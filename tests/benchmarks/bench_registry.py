"""envkit push/pull of a multi-layer image (~30 MB, random) to and from a local
docker-registry, beside ``skopeo copy`` of the same image.

Cold: the destination is empty (a fresh registry for each push, so no tool can mount or
skip a blob; a fresh store or directory for each pull). Warm: the destination already
has every blob (a push of the same image again, a pull into the same store). Both tools
run as a user would: a fresh process per run, envkit's and skopeo's runs in alternation
(:func:`paired`), so a shared host's changing load weighs on both alike.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests import images
from tests.benchmarks.common import Result, envkit_command, have, sh
from tests.integration.registry_server import RegistryServer, missing_tools

RUNS = 7
LAYER_BYTES = 10 << 20
LAYERS = 3


def paired(
    ours: Callable[[], object],
    peer: Callable[[], object] | None,
    setup: Callable[[], object] | None = None,
    peer_setup: Callable[[], object] | None = None,
    runs: int = RUNS,
) -> tuple[float, float | None]:
    """Median wall times of ``ours`` and ``peer``, run in alternation (one of each per
    round, which goes first alternating too), so both see the same load of a shared
    host; ``setup``/``peer_setup`` run untimed before each run."""
    times: list[float] = []
    peer_times: list[float] = []
    for i in range(runs):
        order = [(ours, setup, times), (peer, peer_setup, peer_times)]
        for fn, before, into in order if i % 2 == 0 else order[::-1]:
            if fn is None:
                continue
            if before is not None:
                before()
            start = time.perf_counter()
            fn()
            into.append(time.perf_counter() - start)
    return statistics.median(times), statistics.median(peer_times) if peer_times else None


def _envkit(home: Path, *args: str) -> None:
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    subprocess.run(
        [*envkit_command(), *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def main() -> list[Result]:
    if missing_tools() or not images.have_busybox():
        print("bench_registry: docker-registry, openssl, htpasswd or busybox missing, skipped")
        return []
    work = Path(tempfile.mkdtemp(prefix="envkit-bench-registry-"))
    try:
        return _run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Registries:
    """A fresh registry on demand; stops the previous one."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0
        self.current: RegistryServer | None = None

    def fresh(self) -> RegistryServer:
        self.stop()
        self.count += 1
        self.current = RegistryServer(self.work / f"registry-{self.count}").start()
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            shutil.rmtree(self.current.base, ignore_errors=True)
            self.current = None


def _run(work: Path) -> list[Result]:
    layers = [images.busybox_layer()]
    layers += [images.random_layer(10 + i, LAYER_BYTES) for i in range(LAYERS)]
    layout = work / "layout"
    images.build_layout(layout, layers, ref="bench:1")
    archive = work / "bench.tar"
    images.tar_directory(layout, archive)
    size_mb = archive.stat().st_size / 1e6
    source_home = work / "source-home"
    _envkit(source_home, "load", str(archive))
    skopeo = have("skopeo")
    registries = _Registries(work)
    counter = iter(range(1_000_000))
    state: dict[str, Path] = {}
    results: list[Result] = []

    def host() -> str:
        assert registries.current is not None
        return registries.current.host

    def skopeo_copy(src: str, dest: str) -> None:
        sh(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", src, dest])

    def envkit_push() -> None:
        _envkit(source_home, "push", "-q", "bench:1", f"{host()}/bench/img:1")

    def skopeo_push() -> None:
        skopeo_copy(f"oci:{layout}:bench:1", f"docker://{host()}/bench/img:1")

    def fresh(kind: str) -> None:
        state[kind] = work / f"{kind}-{next(counter)}"

    try:
        # -- push ------------------------------------------------------------------------
        # Cold: a fresh registry before each push, of either tool. Warm: the registry
        # holds the image (each tool pushed it once cold).
        push_cold, peer_cold = paired(
            envkit_push, skopeo_push if skopeo else None, registries.fresh, registries.fresh
        )
        registries.fresh()
        envkit_push()
        if skopeo:
            skopeo_push()
        push_warm, peer_warm = paired(envkit_push, skopeo_push if skopeo else None)
        note = f"{size_mb:.1f} MB, {LAYERS + 1} layers"
        results.append(Result("registry push (cold)", push_cold, "skopeo", peer_cold, note))
        results.append(
            Result("registry push (warm: all blobs there)", push_warm, "skopeo", peer_warm)
        )

        # -- pull (from the registry the last push filled) ---------------------------------
        ref = f"{host()}/bench/img:1"

        def envkit_pull() -> None:
            _envkit(state["home"], "pull", "-q", ref)

        def skopeo_pull() -> None:
            skopeo_copy(f"docker://{ref}", f"oci:{state['dir']}:bench:1")

        pull_cold, peer_cold = paired(
            envkit_pull,
            skopeo_pull if skopeo else None,
            lambda: fresh("home"),
            lambda: fresh("dir"),
        )
        pull_warm, peer_warm = paired(envkit_pull, skopeo_pull if skopeo else None)
        results.append(Result("registry pull (cold)", pull_cold, "skopeo", peer_cold, note))
        results.append(
            Result("registry pull (warm: all blobs there)", pull_warm, "skopeo", peer_warm)
        )
    finally:
        registries.stop()
    return results


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
