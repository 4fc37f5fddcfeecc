"""The fully cached build's fast path: what ``envkit build`` with nothing changed
imports and writes, and when build notifications load the plugins (issue 21).

No timing is asserted here: the figures live in tests/benchmarks/bench_build.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: Modules a fully cached build of spec steps does not need (each was imported before
#: issue 21): the plugin frame, the layer writer and its compressors, the Dockerfile
#: steps, the crash sweep, datetime and traceback; the spec objects an Image is not made
#: of, difflib (only for "did you mean" hints), typing (only for type checkers) and
#: hashlib (OpenSSL: only to hash a context file the index does not know), and argparse
#: (a plain command line is run without it).
NOT_NEEDED = (
    "argparse",
    "gettext",
    "locale",
    "hashlib",
    "typing",
    "envkit.spec.service",
    "envkit.spec.stack",
    "envkit.spec.network",
    "envkit.spec.readiness",
    "difflib",
    "pluggy",
    "envkit.plugins.manager",
    "envkit.oci.layer_writer",
    "tarfile",
    "envkit.build.dockerfile_steps",
    "envkit.build.dockerfile",
    "envkit.build.sweep",
    "envkit.build.run_step",
    "envkit.build.copy_layer",
    "traceback",
    "datetime",
)

APP = """
from envkit import Image

app = (
    Image.scratch()
    .workdir("/app")
    .copy("a.txt", ".")
    .copy("b.txt", ".")
    .env(A="1")
    .cmd(["cat", "/app/a.txt"])
)
"""

PROBE = """
import json, sys
from envkit.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``root`` with its size and mtime (what a write would change)."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("alpha\n")
    (ctx / "b.txt").write_text("beta\n")
    (ctx / "app.py").write_text(APP)
    (ctx / ".dockerignore").write_text("app.py\n")
    return ctx


def _build(ctx: Path, home: Path) -> dict[str, Any]:
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    env.pop("ENVKIT_DEBUG", None)
    argv = ["build", f"{ctx / 'app.py'}:app", "-t", "app:1", "--progress", "quiet"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ctx,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_a_fully_cached_build_imports_only_what_it_needs(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _build(project, home)
    assert first["code"] == 0
    again = _build(project, home)
    assert again["code"] == 0
    loaded = set(again["modules"])
    assert sorted(loaded & set(NOT_NEEDED)) == []


def test_a_fully_cached_build_writes_nothing(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _build(project, home)
    _build(project, home)  # the context index settles (racily clean entries)
    before, context_before = _tree(home), _tree(project)
    _build(project, home)
    assert _tree(home) == before
    assert _tree(project) == context_before


def test_a_base_in_the_store_is_found_without_loading_the_plugins(tmp_path: Path) -> None:
    """A build that executes (here --no-cache) finds a registry base already in the
    store as the built-in ref source would, without pluggy, when no plugin beyond
    envkit's own can be installed; its copy does not load the Dockerfile steps."""
    from tests.images import build_archive

    home = tmp_path / "home"
    archive = tmp_path / "busybox.tar"
    build_archive(archive, ref="busybox:1")
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    load = [sys.executable, "-m", "envkit", "load", "-q", "-i", str(archive)]
    subprocess.run(load, env=env, check=True, capture_output=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("alpha\n")
    (ctx / "app.py").write_text(
        "from envkit import Image\n"
        "app = Image.from_('busybox:1').copy('a.txt', '/a.txt').env(A='1').cmd(['true'])\n"
    )
    argv = ["build", f"{ctx / 'app.py'}:app", "--no-cache", "--progress", "quiet"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, cwd=ctx
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["code"] == 0
    assert "pluggy" not in found["modules"]
    assert "envkit.build.dockerfile_steps" not in found["modules"]  # copy_step needs none
