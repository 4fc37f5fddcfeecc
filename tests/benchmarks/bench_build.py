"""``envkit build`` of a small app beside BuildKit (``docker build`` with
``DOCKER_BUILDKIT=1`` on Debian's dockerd 20.10) and ``podman build`` of the equivalent
Dockerfile.

The app: the busybox test image as base, three copied files, one shell step, a CMD. Every
tool starts from the same busybox image loaded into a private store (envkit: a temp
``ENVKIT_HOME``; podman: a private ``--root``/``--runroot``; BuildKit: a dockerd of the
benchmark's own, started here when Debian's docker.io is installed and stopped by its
PID after, see dockerd_peer.py), and is timed through its CLI, as a user runs it (envkit:
the console script):

* cold: every step executed (``--no-cache`` for both; the base is already stored),
* cached: a rebuild with nothing changed,
* one change: a rebuild after one copied file changed (its copy, the run and the CMD run).

podman runs with ``--isolation chroot``: as root on this host its runc path fails to set
RLIMIT_NPROC for build containers (``error setting rlimit type 6``), and chroot isolation
is also its fastest. BuildKit's RUN steps run with ``--network=none`` (the private dockerd
has no bridge). The cold and the cached builds of envkit and BuildKit are timed
alternately, one of each per round, so that both see the same load. The in-process
API's cached rebuild (``Builder.build``) is timed too: what remains of the CLI's figure
is the interpreter's start-up and imports.

Targets (issue 21): fully cached <= 0.7x BuildKit (aim 0.5x); cache miss <= 0.5x.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.benchmarks.common import Result, envkit_command, have, median_time, sh
from tests.benchmarks.dockerd_peer import buildkit_env, private_dockerd

RUNS = 5
#: Rounds of the cached rebuilds timed side by side (one of each tool per round).
CACHED_RUNS = 15
REF = "busybox:1"
FILES = {"a.txt": "alpha\n", "b.txt": "beta\n", "c.txt": "gamma\n"}

APP_PY = f"""
from envkit import Image

app = (
    Image.from_({REF!r})
    .workdir("/app")
    .copy("a.txt", ".")
    .copy("b.txt", ".")
    .copy("c.txt", ".")
    .run("cat a.txt b.txt c.txt > all.txt")
    .cmd(["cat", "/app/all.txt"])
)
"""

CONTAINERFILE = """FROM {base}
WORKDIR /app
COPY a.txt .
COPY b.txt .
COPY c.txt .
RUN cat a.txt b.txt c.txt > all.txt
CMD ["cat", "/app/all.txt"]
"""


def _changer(path: Path) -> Callable[[], None]:
    counter = itertools.count()

    def change() -> None:
        path.write_text(f"alpha {next(counter)}\n")

    return change


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _envkit(
    base: Path, archive: Path, ctx: Path, peer: list[str] | None
) -> tuple[float, float, float, float, float | None, float | None]:
    """Cold, cached, one change, API cached; and BuildKit's cold and cached figures
    (its ``docker build`` argv: ``peer``) timed in the same rounds as envkit's
    (``None`` without the peer)."""
    from envkit.build.executor import Builder
    from envkit.spec.loader import load_image
    from envkit.store.store import Store

    home = base / "home"
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    env.pop("ENVKIT_DEBUG", None)
    command = envkit_command()

    def cli(*args: str) -> None:
        subprocess.run([*command, *args], check=True, env=env, stdout=subprocess.DEVNULL)

    cli("load", "-q", "-i", str(archive))
    build = ("build", f"{ctx / 'app.py'}:app", "-t", "app:1", "--progress", "quiet")
    cli(*build)  # warm-up: the base's snapshot is extracted once
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(RUNS):
        ours.append(_timed(lambda: cli(*build, "--no-cache")))
        if peer is not None:
            theirs.append(_timed(lambda: _buildkit([*peer[:-3], "--no-cache", *peer[-3:]])))
    cold = statistics.median(ours)
    peer_cold = statistics.median(theirs) if theirs else None
    cli(*build)
    if peer is not None:
        _buildkit(peer)
    ours, theirs = [], []
    for _ in range(CACHED_RUNS):
        ours.append(_timed(lambda: cli(*build)))
        if peer is not None:
            theirs.append(_timed(lambda: _buildkit(peer)))
    cached = statistics.median(ours)
    change = median_time(lambda: cli(*build), RUNS, setup=_changer(ctx / "a.txt"))
    saved = os.environ.get("ENVKIT_HOME")
    os.environ["ENVKIT_HOME"] = str(home)
    try:
        image = load_image(ctx / "app.py", "app")
        builder = Builder(Store.default())
        builder.build(image, ctx, tag="app:1")
        api = median_time(lambda: builder.build(image, ctx, tag="app:1"), RUNS)
    finally:
        if saved is None:
            os.environ.pop("ENVKIT_HOME", None)
        else:
            os.environ["ENVKIT_HOME"] = saved
    return cold, cached, change, api, peer_cold, statistics.median(theirs) if theirs else None


def _buildkit_setup(docker: list[str], base: Path, ctx: Path) -> list[str]:
    """Load the busybox base into the private dockerd and write the Dockerfile; the
    ``docker build`` argv (a first build warms BuildKit's cache)."""
    from tests.images import docker_archive

    archive = base / "busybox-docker.tar"
    docker_archive(archive, repo_tags=(REF,), legacy_dirs=True)  # docker < 25's format
    sh([*docker, "load", "-i", str(archive)])
    dockerfile = base / "Dockerfile"
    dockerfile.write_text(CONTAINERFILE.format(base=REF))
    build = [*docker, "build", "-q", "--network=none", "-t", "app:1"]
    build += ["-f", str(dockerfile), str(ctx)]
    _buildkit(build)
    return build


def _buildkit(argv: list[str]) -> None:
    subprocess.run(
        argv, check=True, env=buildkit_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _buildkit_change(build: list[str], ctx: Path) -> float:
    """BuildKit's one-change figure."""
    _buildkit(build)
    return median_time(lambda: _buildkit(build), RUNS, setup=_changer(ctx / "a.txt"))


def _podman(base: Path, archive: Path, ctx: Path) -> tuple[list[float | None], str]:
    if not have("podman"):
        return [None, None, None], "podman not installed"
    cmd = ["podman", "--root", str(base / "podman"), "--runroot", str(base / "podman-run")]
    cmd += ["--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    try:
        loaded = subprocess.run(
            [*cmd, "load", "-q", "-i", str(archive)], check=True, capture_output=True, text=True
        )
        image = loaded.stdout.strip().rsplit(" ", 1)[-1]
        (ctx / "Containerfile").write_text(CONTAINERFILE.format(base=image))
        build = [*cmd, "build", "--pull=never", "--isolation", "chroot", "-t", "app:1"]
        build += ["-f", str(ctx / "Containerfile"), str(ctx)]
        sh(build)
        cold = median_time(lambda: sh([*build[:-3], "--no-cache", *build[-3:]]), RUNS)
        cached = median_time(lambda: sh(build), RUNS)
        change = median_time(lambda: sh(build), RUNS, setup=_changer(ctx / "a.txt"))
        return [cold, cached, change], ""
    except subprocess.CalledProcessError as exc:
        err = exc.stderr if isinstance(exc.stderr, str) else exc.stderr.decode(errors="replace")
        return [None, None, None], f"podman failed: {err.strip()[-160:]}"
    finally:
        if os.geteuid() != 0:
            store = [str(base / "podman"), str(base / "podman-run")]
            subprocess.run(["podman", "unshare", "rm", "-rf", *store], check=False)


def main() -> list[Result]:
    from tests.images import build_archive

    with tempfile.TemporaryDirectory(
        prefix="envkit-bench-build-", ignore_cleanup_errors=True
    ) as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        archive = base / "busybox.tar"
        build_archive(archive, ref=REF)
        ctx = base / "ctx"
        ctx.mkdir()
        for name, text in FILES.items():
            (ctx / name).write_text(text)
        (ctx / "app.py").write_text(APP_PY)
        (ctx / ".dockerignore").write_text("app.py\nContainerfile\n")
        with private_dockerd(base) as (docker, bk_note):
            bk_build = _buildkit_setup(docker, base, ctx) if docker else None
            cold, cached, change, api, bk_cold, bk_cached = _envkit(base, archive, ctx, bk_build)
            (ctx / "a.txt").write_text(FILES["a.txt"])
            bk_change = _buildkit_change(bk_build, ctx) if bk_build else None
        (ctx / "a.txt").write_text(FILES["a.txt"])
        (peer_cold, peer_cached, peer_change), note = _podman(base, archive, ctx)
    bk, peer = "BuildKit", "podman build"
    return [
        Result("build: fully cached rebuild, CLI", cached, bk, bk_cached,
               bk_note or "target <= 0.7x (aim 0.5x); alternated with envkit, same load"),
        Result("build: cold (--no-cache), CLI", cold, bk, bk_cold,
               bk_note or "target <= 0.5x; alternated with envkit, same load"),
        Result("build: one copied file changed, CLI", change, bk, bk_change, bk_note),
        Result("build: fully cached rebuild, CLI", cached, peer, peer_cached,
               note or "the CLI's floor is Python start-up + imports"),
        Result("build: cold (--no-cache), CLI", cold, peer, peer_cold, note or "target <= 1x"),
        Result("build: one copied file changed, CLI", change, peer, peer_change,
               note or "target <= 1x"),
        Result(
            "build: fully cached rebuild, Builder.build() (API)",
            api,
            bk,
            bk_cached,
            "in-process: plan (stat index), cache look-up, manifest already stored",
        ),
    ]  # fmt: skip


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
