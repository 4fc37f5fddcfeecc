"""``envkit config`` through ``envkit.cli.main`` and its YAML emitter."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.cli.config_cmd import to_yaml

STACK = """\
from envkit import Image, Service, Stack, Volume
data = Volume("data")
web = Service("web", image=Image.from_("busybox").cmd(["httpd", "-f"]), ports={8000: 80},
              volumes={data: "/data", "./conf": "/etc/conf:ro"})
stack = Stack("demo", services=[web])
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    (tmp_path / "stack.py").write_text(STACK)
    return tmp_path


def test_prints_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["base_dir"] == str(project)
    assert data["name"] == "demo"
    web = data["services"]["web"]
    assert web["ports"] == ["127.0.0.1:8000:80/tcp"]
    assert web["networks"] == ["default"]
    assert web["image"]["base"]["ref"] == "docker.io/library/busybox:latest"
    assert sorted(data["volumes"]) == ["data"]


def test_prints_yaml_by_default(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", str(project / "stack.py")]) == 0
    out = capsys.readouterr().out
    assert "name: demo\n" in out
    assert '      - "127.0.0.1:8000:80/tcp"\n' in out
    assert "        target: /etc/conf\n" in out


def test_yaml_and_json_say_the_same(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    python = shutil.which("python3", path="/usr/bin")
    if python is None or subprocess.run([python, "-c", "import yaml"]).returncode != 0:
        pytest.skip("needs /usr/bin/python3 with PyYAML to cross-check the emitter")
    main(["config", "--format", "json"])
    expected = json.loads(capsys.readouterr().out)
    main(["config"])
    parsed = subprocess.run(
        [python, "-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=capsys.readouterr().out,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(parsed.stdout) == expected


TRICKY = [
    "",
    "yes",
    "No",
    "null",
    "~",
    "true",
    "1.5",
    ".5",
    "1e3",
    "0x1F",
    "8000:5000",
    "a: b",
    "- x",
    "#c",
    "a #b",
    " lead",
    "trail ",
    'q"uote',
    "back\\slash",
    "line\nbreak",
    "tab\t",
    "\x7f",
    "\x00",
    "é",
    "😀",
    "[x]",
    "{x}",
    "*a",
    "&a",
    "!t",
    "%p",
    "@a",
    "`b",
    "|",
    ">",
    ".inf",
    "-.Inf",
    ".NaN",
    "/bin/sh",
    "docker.io/library/busybox:latest",
    "'s'",
    "=",
]


def test_yaml_emitter_round_trips_tricky_scalars() -> None:
    python = "/usr/bin/python3"
    if not Path(python).exists() or subprocess.run([python, "-c", "import yaml"]).returncode:
        pytest.skip("needs /usr/bin/python3 with PyYAML to cross-check the emitter")
    data = {
        "strings": TRICKY,
        "keys": {s: s for s in TRICKY if s},
        "numbers": [0, -3, 1.5, 1e300, float("inf")],
        "empty": {"d": {}, "l": []},
        "nested": [[1, [2]], {"a": [{"b": None, "c": False}]}],
    }
    parsed = subprocess.run(
        [python, "-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=to_yaml(data),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(parsed.stdout) == json.loads(json.dumps(data))


def test_yaml_emitter_shape() -> None:
    assert to_yaml({"a": [{"b": 1, "c": [2]}], "d": {}}) == (
        "a:\n  - b: 1\n    c:\n      - 2\nd: {}\n"
    )


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        (None, ["config", "missing.py"], "missing.py: no such stack file"),
        ("x = (\n", ["config"], "stack.py:1:"),
        ("import os\nos.fspath(3)\n", ["config"], "stack.py:2: TypeError:"),
        (
            "from envkit import Volume\nVolume('a/b')\n",
            ["config"],
            "stack.py:2: Volume('a/b').name: invalid volume name",
        ),
        ("x = 1\n", ["config"], "stack.py: no Stack found"),
        (
            STACK + "other = Stack('b', services=[web])\n",
            ["config"],
            "found stacks b, demo; choose one with --stack NAME",
        ),
        (STACK, ["config", "--stack", "zzz"], "no stack named 'zzz'"),
    ],
)
def test_errors_exit_2_with_one_message(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    text: str | None,
    args: list[str],
    expected: str,
) -> None:
    if text is not None:
        (project / "stack.py").write_text(text)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("envkit: error: ")
    assert expected in captured.err
    assert "Traceback" not in captured.err
    assert captured.err.count("envkit: error:") == 1
