"""Golden files pin the canonical forms: they are the input of cache keys.

A failure here means a canonical form changed. If that was on purpose, bump
``envkit.spec.canonical.FORMAT_VERSION`` and regenerate with::

    ENVKIT_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/spec/test_golden.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from envkit import Healthcheck, Image, Network, Secret, Service, Stack, Volume
from envkit.oci.types import canonical_json
from envkit.spec.canonical import SpecObject

GOLDEN = Path(__file__).parent / "golden"


def full_image() -> Image:
    builder = Image.debian("bookworm", packages=["gcc", "make"]).run(
        "make -C /src", caches={"/root/.cache": "build"}, network="none", env={"CC": "gcc"}
    )
    return (
        Image.from_("python:3.11-slim")
        .copy("/out", "/opt/app", from_=builder, chown="1000:1000", chmod=0o755)
        .run(["pip", "install", "x"], secrets=[Secret.from_env("PIP_TOKEN", required=False)])
        .workdir("/app")
        .copy(".", ".", ignore=[".git", "!keep"])
        .env(PORT="5000")
        .user("1000:1000")
        .expose(5000)
        .expose("53/udp")
        .entrypoint(["/init"])
        .cmd("python app.py")
        .label(maintainer="team@example.org")
        .healthcheck(Healthcheck(["curl", "-f", "localhost:5000"], interval=5, retries=2))
    )


def full_service() -> Service:
    return Service(
        "web",
        image=full_image(),
        command=["python", "app.py"],
        entrypoint="tini --",
        env={"DATABASE_URL": "postgresql://db:5432/app", "WORKERS": 4},
        ports={8000: 5000, "0.0.0.0:8443": "443/tcp", 0: "9000/udp"},
        volumes={Volume("data", options={"size": "1g"}): "/data", "./conf": "/etc/app:ro"},
        secrets=[Secret.from_file("./db_password.txt"), Secret("api", source="vault:kv/api")],
        healthcheck=Healthcheck("curl -f localhost:5000", start_period=2),
        depends_on={"db": "healthy", "migrate": "completed"},
        restart="on-failure:3",
        networks=[Network("backend", subnet="10.89.0.0/24"), "frontend"],
        user="app",
        workdir="/app",
        hostname="web-1",
        tmpfs=["/run", "/tmp:size=64m"],
        read_only=True,
        memory="256m",
        cpus=1.5,
        pids_limit=100,
        aliases=["www"],
        labels={"tier": "front"},
    )


def design_stack() -> Stack:
    """The example of DESIGN.md."""
    builder = (
        Image.from_("python:3.11-slim")
        .workdir("/src")
        .copy("requirements.txt", ".")
        .run("pip wheel -r requirements.txt -w /wheels")
    )
    app = (
        Image.from_("python:3.11-slim")
        .copy("/wheels", "/wheels", from_=builder)
        .run("pip install /wheels/*", secrets=[Secret.from_env("PIP_TOKEN", required=False)])
        .workdir("/app")
        .copy(".", ".", ignore=[".git", "__pycache__"])
        .env(PORT="5000")
        .user("1000:1000")
        .expose(5000)
        .cmd(["python", "app.py"])
        .label(maintainer="team@example.org")
    )
    net = Network("backend")
    db = Service(
        "db",
        image=Image.debian("bookworm", packages=["postgresql"]),
        volumes={Volume("db-data"): "/var/lib/postgresql/data"},
        secrets=[Secret.from_file("./db_password.txt")],
        healthcheck=Healthcheck(["pg_isready", "-h", "127.0.0.1"], interval=0.5, retries=60),
        networks=[net],
    )
    web = Service(
        "web",
        image=app,
        env={"DATABASE_URL": "postgresql://db:5432/app"},
        ports={8000: 5000},
        depends_on={db: "healthy"},
        restart="unless-stopped",
        networks=[net],
    )
    cache = Service("cache", image="redis:7")
    return Stack("shop", services=[web, db, cache])


CASES: dict[str, Callable[[], SpecObject]] = {
    "image_full": full_image,
    "service_full": full_service,
    "stack_design": design_stack,
    "image_scratch": Image.scratch,
    "volume_default": lambda: Volume("data"),
    "network_default": lambda: Network("default"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_canonical_form_matches_golden(name: str) -> None:
    obj = CASES[name]()
    path = GOLDEN / f"{name}.json"
    data = obj.canonical()
    if os.environ.get("ENVKIT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        record = {"cache_key": obj.cache_key(), "canonical": data}
        path.write_text(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    if not path.exists():
        pytest.fail(f"{path} is missing: run with ENVKIT_UPDATE_GOLDEN=1 to create it")
    golden = json.loads(path.read_text())
    assert data == golden["canonical"], f"canonical form of {name} changed (see module doc)"
    assert obj.cache_key() == golden["cache_key"]
    # The canonical form survives JSON unchanged (only JSON types in it).
    assert json.loads(canonical_json(data)) == data
