"""The stack examples under examples/, run as their READMEs say: the multi-stage build
whose final image holds only the artifact, and the environment override."""

from __future__ import annotations

# The fixtures come from test_stack (imported below); tests taking them as arguments
# "redefine" them for ruff.
# ruff: noqa: F811
import shutil
import tarfile
import urllib.request
from pathlib import Path

import pytest

from envkit.spec.loader import load_stack
from envkit.stack import state as ss
from tests.integration.test_stack import (  # noqa: F401 - fixtures
    cli,
    home,
    leftovers,
    loaded_home,
    wait_for,
)

pytestmark = pytest.mark.rootless

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy_example(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target)
    return target


def test_multi_stage_final_image_carries_only_the_artifact(home: Path, tmp_path: Path) -> None:
    from envkit.store.store import Store

    here = copy_example("multi-stage", tmp_path)
    up = cli(home, ["up", "-d"], cwd=here, timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        port = cli(home, ["stack", "port", "-p", "multistage", "web", "8080"]).stdout.strip()
        with urllib.request.urlopen(f"http://{port}/", timeout=5) as answer:
            page = answer.read().decode()
        assert "<h1>multi-stage build</h1>" in page and "built from 2 source files" in page
        image = ss.require("multistage").services["web"].image_id
        store = Store.default()
        _, manifest = store.image_manifest(store.resolve(image))
        names: set[str] = set()
        for layer in manifest.layers:
            with store.open_blob(layer.digest) as blob, tarfile.open(fileobj=blob) as tar:
                names |= {m.name.rstrip("/") for m in tar.getmembers() if not m.isdir()}
        assert names == {"bin/busybox", "www/index.html"}
    finally:
        assert cli(home, ["down", "-p", "multistage"]).returncode == 0
    assert leftovers(home) == []


def test_env_override_example(home: Path, tmp_path: Path) -> None:
    here = copy_example("env-override", tmp_path)
    built = cli(home, ["build", "stack.py:app", "-t", "envdemo:latest"], cwd=here)
    assert built.returncode == 0, built.stderr
    default = cli(home, ["run", "--rm", "envdemo:latest"])
    assert default.stdout.strip() == "APP_ENV=Production GREETING=hello LEVEL=", default.stderr
    staged = cli(home, ["run", "--rm", "-e", "APP_ENV=Staging", "envdemo:latest"])
    assert staged.stdout.strip() == "APP_ENV=Staging GREETING=hello LEVEL="
    stack = load_stack(here / "stack.py")
    with stack.up() as running:
        wait_for(lambda: bool(running["app"].logs()))
        assert running["app"].logs().strip() == (
            "APP_ENV=Staging GREETING=hi from .env LEVEL=debug"
        )
    assert leftovers(home) == []


@pytest.mark.slow
def test_web_postgres_redis_example(home: Path, tmp_path: Path) -> None:
    import json

    here = copy_example("web-postgres-redis", tmp_path)
    stack = load_stack(here / "stack.py")

    def visit(running: object) -> dict[str, int]:
        from envkit.stack import RunningStack

        assert isinstance(running, RunningStack)
        port = running["web"].port(8000)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    try:
        with stack.up(timeout=900) as running:
            assert visit(running) == {"visits": 1, "hits_since_redis_started": 1}
            assert visit(running) == {"visits": 2, "hits_since_redis_started": 2}
            pw = running["web"].exec(["cat", "/run/secrets/db_password"]).output
            assert pw.strip() == "example-only-password"
        with stack.up(timeout=300) as running:  # the volume kept the database
            assert visit(running) == {"visits": 3, "hits_since_redis_started": 1}
    finally:
        from envkit.stack import down

        down(stack, volumes=True)
    assert leftovers(home) == []
