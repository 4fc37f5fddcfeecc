"""Merging compose files (compose-spec 13-merge.md): the rules, and errors naming the file
and line a merged value came from. tests/unit/compose/test_peers.py checks the same cases
against docker-compose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envkit.compose import load
from envkit.errors import StackFileError
from envkit.spec import Healthcheck, Image, Volume

DATA = Path(__file__).resolve().parents[2] / "data" / "compose" / "merge"


def test_spec_rules(tmp_path: Path) -> None:
    shutil.copytree(DATA / "spec-rules", tmp_path / "p")
    stack = load([tmp_path / "p" / "compose.yaml", tmp_path / "p" / "override.yaml"]).stack
    foo = stack["foo"]
    assert foo.image == Image.from_("busybox:1.36")  # a scalar: replaced
    assert foo.command == ("echo", "bar")  # command: replaced, not appended
    assert foo.cap_add == ("CAP_NET_ADMIN", "CAP_SYS_PTRACE")  # a sequence: appended
    assert {m.target: m.source for m in foo.volumes} == {
        "/work": Volume("bar"),  # unique by target: the later one wins
        "/keep": Volume("keep"),
    }
    assert sorted(p.container_port for p in foo.ports) == [80, 443]
    assert dict(foo.env) == {"KEEP": "1"}  # FOO: !reset
    assert foo.healthcheck == Healthcheck(["false"], interval=10)  # test replaced, rest kept
    assert [(p.host_port, p.container_port) for p in stack["bar"].ports] == [(8444, 443)]
    assert [v.name for v in stack.volumes] == ["bar", "keep"]


def test_list_and_mapping_forms_merge(tmp_path: Path) -> None:
    shutil.copytree(DATA / "forms", tmp_path / "p")
    project = load(
        [tmp_path / "p" / "compose.yaml", tmp_path / "p" / "second.yaml"], environ={"TOKEN": "t"}
    )
    app = project.stack["app"]
    assert dict(app.depends_on) == {"cache": "started", "worker": "started"}
    assert dict(app.labels)["tier"] == "front" and dict(app.labels)["owner"] == "team"
    assert [n.name for n in app.networks] == ["back", "front"] and app.aliases == ("api",)
    assert [s.name for s in app.secrets] == ["api_token", "other", "token"]
    assert project.builds["app"].args == (("VERSION", "2"),)
    assert project.builds["app"].dockerfile == "app/Dockerfile.dev"


def test_override_file_found_beside_the_compose_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envkit.cli.stack_cmds import default_files

    shutil.copytree(DATA / "dev-override", tmp_path / "p")
    monkeypatch.chdir(tmp_path / "p")
    monkeypatch.delenv("COMPOSE_FILE", raising=False)
    files = default_files()
    assert [f.name for f in files] == ["compose.yaml", "compose.override.yaml"]
    stack = load(files).stack
    assert dict(stack["web"].env) == {
        "DATABASE_URL": "postgresql://db/app",
        "LOG_LEVEL": "debug",
        "FLASK_DEBUG": "1",
    }
    assert dict(stack["web"].depends_on) == {"db": "healthy"}
    assert stack["db"].healthcheck == Healthcheck("pg_isready", interval=1)


def test_an_error_names_the_file_the_value_came_from(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: busybox\n")
    (tmp_path / "more.yaml").write_text("services:\n  a:\n    user: ${U:?set U}\n")
    with pytest.raises(StackFileError) as caught:
        load([tmp_path / "compose.yaml", tmp_path / "more.yaml"], environ={})
    assert str(caught.value).startswith(f"{tmp_path}/more.yaml:3: services.a.user: required")
    (tmp_path / "more.yaml").write_text("services:\n  a:\n\n    privileged: true\n")
    with pytest.raises(StackFileError) as caught:
        load([tmp_path / "compose.yaml", tmp_path / "more.yaml"], environ={})
    assert str(caught.value).startswith(f"{tmp_path}/more.yaml:4: services.a.privileged")


def test_paths_are_relative_to_the_first_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: busybox\n")
    (tmp_path / "sub" / "more.yaml").write_text("services:\n  a:\n    volumes: [./data:/data]\n")
    stack = load([tmp_path / "compose.yaml", tmp_path / "sub" / "more.yaml"], environ={}).stack
    assert stack["a"].volumes[0].source == str(tmp_path / "data")
    assert stack.base_dir == tmp_path


def test_extends_in_this_file_and_another(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        """\
services:
  base:
    image: busybox
    user: root
    environment: [TZ=utc, PORT=80]
    volumes: [common:/data:rw]
  common:
    image: busybox
    extends:
      service: base
  cli:
    extends: {service: common}
    environment:
      PORT: 8080
    volumes: [cli:/data:ro]
  web:
    extends:
      file: common.yml
      service: webapp
    ports: ["8000:80"]
volumes:
  common:
  cli:
"""
    )
    (tmp_path / "common.yml").write_text(
        "services:\n  webapp:\n    image: nginx\n    environment: {A: '1'}\n"
        "    ports: ['8080:80']\n"
    )
    stack = load(tmp_path / "compose.yaml", environ={}).stack
    assert stack["cli"].user == "root"  # from base, through common
    assert dict(stack["cli"].env) == {"TZ": "utc", "PORT": "8080"}
    (mount,) = stack["cli"].volumes
    assert (mount.source, mount.read_only) == (Volume("cli"), True)  # by target: replaced
    assert stack["web"].image == Image.from_("nginx")
    assert sorted(p.host_port for p in stack["web"].ports) == [8000, 8080]


def test_extends_cycle_and_unknown_service(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    extends: b\n  b:\n    image: x\n    extends: a\n"
    )
    with pytest.raises(StackFileError, match="extends forms a cycle: a -> b -> a"):
        load(tmp_path / "compose.yaml", environ={})
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    extends: nope\n")
    with pytest.raises(StackFileError, match=r"compose\.yaml:3: services\.a\.extends: no service"):
        load(tmp_path / "compose.yaml", environ={})
