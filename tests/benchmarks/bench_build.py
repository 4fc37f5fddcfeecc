"""``envkit build`` of a small app beside ``podman build`` of the equivalent Containerfile.

The app: the busybox test image as base, three copied files, one shell step, a CMD. Both
tools start from the same busybox OCI archive loaded into a private store (envkit: a
temp ``ENVKIT_HOME``; podman: a private ``--root``/``--runroot``), and are timed through
their CLIs:

* cold: every step executed (``--no-cache`` for both; the base is already stored),
* cached: a rebuild with nothing changed,
* one change: a rebuild after one copied file changed (its copy, the run and the CMD run).

podman runs with ``--isolation chroot``: as root on this host its runc path fails to set
RLIMIT_NPROC for build containers (``error setting rlimit type 6``), and chroot isolation
is also its fastest. The in-process API's cached rebuild (``Builder.build``) is timed too:
what remains of the CLI's figure is the interpreter's start-up and imports.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.benchmarks.common import Result, have, median_time, sh

RUNS = 5
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
    return lambda: path.write_text(f"alpha {next(counter)}\n")


def _envkit(base: Path, archive: Path, ctx: Path) -> tuple[float, float, float, float]:
    from envkit.build.executor import Builder
    from envkit.spec.loader import load_image
    from envkit.store.layout import Store

    home = base / "home"
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    env.pop("ENVKIT_DEBUG", None)

    def cli(*args: str) -> None:
        argv = [sys.executable, "-m", "envkit", *args]
        subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)

    cli("load", "-q", "-i", str(archive))
    build = ("build", f"{ctx / 'app.py'}:app", "-t", "app:1", "--progress", "quiet")
    cli(*build)  # warm-up: the base's snapshot is extracted once
    cold = median_time(lambda: cli(*build, "--no-cache"), RUNS)
    cached = median_time(lambda: cli(*build), RUNS)
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
    return cold, cached, change, api


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
        cold, cached, change, api = _envkit(base, archive, ctx)
        (ctx / "a.txt").write_text(FILES["a.txt"])
        (peer_cold, peer_cached, peer_change), note = _podman(base, archive, ctx)
    peer = "podman build"
    return [
        Result("build: cold (--no-cache), CLI", cold, peer, peer_cold, note or "target <= 1x"),
        Result(
            "build: fully cached rebuild, CLI",
            cached,
            peer,
            peer_cached,
            note or "target <= 0.25x; the CLI's floor is Python start-up + imports",
        ),
        Result("build: one copied file changed, CLI", change, peer, peer_change, "target <= 1x"),
        Result(
            "build: fully cached rebuild, Builder.build() (API)",
            api,
            peer,
            peer_cached,
            "in-process: plan (stat index), cache look-up, manifest already stored",
        ),
    ]


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
