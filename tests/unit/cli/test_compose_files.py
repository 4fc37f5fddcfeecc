"""``envkit config`` and the stack commands on compose files (no containers started)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envkit.cli import main

COMPOSE = """\
services:
  web:
    image: busybox
    ports: ["8000:80"]
    container_name: old
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    monkeypatch.delenv("COMPOSE_PROFILES", raising=False)
    return folder


def test_config_finds_compose_yaml(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "compose.yaml").write_text(COMPOSE)
    assert main(["config"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("name: shop\nservices:\n  web:\n")
    assert '        published: "8000"\n' in out.out
    assert "warning: " in out.err and "services.web.container_name: ignored" in out.err


@pytest.mark.parametrize("name", ["compose.yml", "docker-compose.yml", "docker-compose.yaml"])
def test_config_finds_the_other_names(
    project: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / name).write_text(COMPOSE)
    assert main(["config", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["services"]["web"]["image"] == "busybox"
    assert data["networks"] == {"default": {"name": "shop_default"}}


def test_config_with_file_and_forms(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "other.yml").write_text(COMPOSE)
    assert main(["config", "-f", "other.yml", "--canonical", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "stack" and data["services"]["web"]["ports"] == ["127.0.0.1:8000:80/tcp"]


def test_config_compose_form_of_a_stack_py(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "stack.py").write_text(
        "from envkit import Service, Stack\n"
        "stack = Stack('demo', services=[Service('web', image='busybox')])\n"
    )
    (project / "compose.yaml").write_text(COMPOSE)  # stack.py wins, as for `up`
    assert main(["config", "--compose"]) == 0
    assert capsys.readouterr().out.startswith("name: demo\n")


def test_config_error_is_one_message_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n    pid: host\n")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "compose.yaml:4: services.web.pid: not supported by envkit" in err
    assert "Traceback" not in err


def test_stack_commands_load_the_compose_file(project: Path) -> None:
    from envkit.cli.stack_cmds import _load, default_file

    assert default_file() is None
    (project / "docker-compose.yml").write_text(COMPOSE)
    assert default_file() == project / "docker-compose.yml"
    assert _load(None, None).name == "shop"
    assert _load("docker-compose.yml", None).name == "shop"
    with pytest.raises(Exception, match="named 'shop', not 'other'"):
        _load(None, "other")


def test_up_parses_f_and_positional_compose_file(project: Path) -> None:
    import argparse

    from envkit.cli.stack_cmds import UpCommand, _split

    parser = argparse.ArgumentParser()
    UpCommand().configure(parser)
    args = parser.parse_args(["-d", "-f", "compose.yaml", "web"])
    assert _split(args) == ("compose.yaml", ["web"])
    args = parser.parse_args(["missing.yaml", "web"])
    assert _split(args) == ("missing.yaml", ["web"])


def test_profile_option(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "compose.yaml").write_text(
        COMPOSE + "  debug:\n    image: busybox\n    profiles: [debug]\n"
    )
    assert main(["config", "--format", "json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["services"]) == ["web"]
    assert main(["config", "--format", "json", "--profile", "debug"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["services"]) == ["debug", "web"]


def test_override_file_is_merged_when_the_file_was_looked_up(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "compose.yaml").write_text(COMPOSE)
    (project / "compose.override.yaml").write_text("services:\n  web:\n    user: '1000'\n")
    assert main(["config", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["services"]["web"]["user"] == "1000"
    assert main(["config", "-f", "compose.yaml", "--format", "json"]) == 0  # named: alone
    assert "user" not in json.loads(capsys.readouterr().out)["services"]["web"]


def test_compose_file_variable_and_several_files(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "web.yml").write_text(COMPOSE)
    (project / "more.yml").write_text("services:\n  web:\n    environment: [A=1]\n")
    monkeypatch.setenv("COMPOSE_FILE", "web.yml")
    assert main(["config", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "shop"
    monkeypatch.setenv("COMPOSE_FILE", "web.yml:more.yml")
    assert main(["config", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["services"]["web"]["environment"] == {"A": "1"}
    monkeypatch.delenv("COMPOSE_FILE")
    assert main(["config", "-f", "web.yml", "-f", "more.yml", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["services"]["web"]["environment"] == {"A": "1"}


def test_stack_py_does_not_merge(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "stack.py").write_text("")
    (project / "more.yml").write_text(COMPOSE)
    assert main(["config", "-f", "stack.py", "-f", "more.yml"]) == 2
    assert "only compose files merge" in capsys.readouterr().err
