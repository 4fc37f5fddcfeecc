"""examples/compose run from their compose.yaml, as a user would: ``envkit up -d``
answers on the published port, ``envkit stack ps`` and ``down`` find the compose file,
the named volume survives ``down`` and ``down -v`` removes it."""

from __future__ import annotations

# The fixtures come from test_stack (imported below); tests taking them as arguments
# "redefine" them for ruff.
# ruff: noqa: F811
import json
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration import homes
from tests.integration.test_stack import (  # noqa: F401 - fixtures
    home,
    leftovers,
    loaded_home,
)

pytestmark = pytest.mark.rootless

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "compose"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def envkit(
    home: Path, argv: list[str], cwd: Path, port: int, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return homes.cli(home, argv, cwd=cwd, timeout=timeout, env={"WEB_PORT": str(port)})


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def test_busybox_compose_stack_up_answers_and_down_v_removes_it(home: Path, tmp_path: Path) -> None:
    here = tmp_path / "shop"
    shutil.copytree(EXAMPLES / "busybox", here)
    port = free_port()
    up = envkit(home, ["up", "-d", "compose.yaml"], here, port)
    assert up.returncode == 0, up.stderr
    try:
        status = get(f"http://127.0.0.1:{port}/cgi-bin/status")
        assert "db boots: 1\n" in status
        assert "cache: PONG\n" in status
        assert "secret: 22 bytes\n" in status  # example-only-password + newline
        ps = envkit(home, ["stack", "ps"], here, port)  # finds compose.yaml by itself
        assert ps.returncode == 0, ps.stderr
        assert all(name in ps.stdout for name in ("web", "db", "cache"))
        down = envkit(home, ["down"], here, port)
        assert down.returncode == 0, down.stderr
        again = envkit(home, ["up", "-d", "-f", "compose.yaml"], here, port)
        assert again.returncode == 0, again.stderr
        assert "db boots: 2\n" in get(f"http://127.0.0.1:{port}/cgi-bin/status")
    finally:
        down = envkit(home, ["down", "-v"], here, port)
    assert down.returncode == 0, down.stderr
    volumes = envkit(home, ["volume", "ls"], here, port)
    assert "shop-lite_db-data" not in volumes.stdout
    assert leftovers(home) == []


@pytest.mark.slow
def test_web_postgres_redis_compose_stack(home: Path, tmp_path: Path) -> None:
    here = tmp_path / "shop"
    shutil.copytree(EXAMPLES, here, ignore=shutil.ignore_patterns("busybox"))
    port = free_port()
    for name, tag in (
        ("python", "shop/python:bookworm"),
        ("postgres", "shop/postgres:15"),
        ("redis", "shop/redis:7"),
    ):
        built = envkit(home, ["build", f"bases.py:{name}", "-t", tag], here, port, timeout=900)
        assert built.returncode == 0, built.stderr
    up = envkit(home, ["up", "-d"], here, port, timeout=900)
    assert up.returncode == 0, up.stderr
    try:
        assert json.loads(get(f"http://127.0.0.1:{port}/")) == {
            "visits": 1,
            "hits_since_redis_started": 1,
        }
    finally:
        down = envkit(home, ["down", "-v"], here, port)
    assert down.returncode == 0, down.stderr
    assert "shop_pgdata" not in envkit(home, ["volume", "ls"], here, port).stdout
    assert leftovers(home) == []
