"""Upstream tables for the compose loader, carried as data in tests/data/compose/.

- interpolation.json: compose-go's ``template`` tests (Substitute inputs and results).
- dotenv.json: compose-go's ``dotenv`` parser tests.
- ports.json, volumes.json: the compose-spec's ports and volumes examples, each with
  what docker-compose 2.40.3 ``config`` makes of it (tests/unit/compose/test_peers.py
  checks these records against the binary when it is installed).

envkit differs from compose on purpose in a few places, listed in ``EXPECTED_REFUSALS``
and in docs/reference/compose.md: ports without a host IP are published on 127.0.0.1,
a host port range mapped onto one container port is refused (envkit publishes one
fixed host port per container port), and ``volume.nocopy``/``volume.subpath`` are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envkit.compose.dotenv import parse as parse_dotenv
from envkit.compose.interpolate import substitute
from envkit.errors import EnvkitError, InterpolationError, MissingRequired, StackFileError

DATA = Path(__file__).parents[2] / "data" / "compose"


def _table(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert data["source"]
    return data


INTERPOLATION = _table("interpolation.json")
DOTENV = _table("dotenv.json")
PORTS = _table("ports.json")
VOLUMES = _table("volumes.json")

#: Inputs envkit refuses where compose accepts, and why (documented differences).
EXPECTED_REFUSALS = {
    "8000-9000:80": "a host port range onto one container port",
    "8083-9000": "a published range onto one container port",
    "nocopy": "volume.nocopy/subpath: envkit seeds every new volume from the image",
}


@pytest.mark.parametrize(
    "case", INTERPOLATION["cases"], ids=[c["template"] for c in INTERPOLATION["cases"]]
)
def test_interpolation_table(case: dict[str, str]) -> None:
    variables = INTERPOLATION["variables"]
    if "error" in case:
        with pytest.raises(InterpolationError) as caught:
            substitute(case["template"], variables)
        assert case["error"] in str(caught.value)
        if "required" in case["error"]:
            assert isinstance(caught.value, MissingRequired)
    else:
        assert substitute(case["template"], variables) == case["expected"]


def test_interpolation_warns_for_unset_plain_variables_only() -> None:
    unset: list[str] = []
    assert substitute("${A:+${A},}B $C ${D:-x}", {}, unset.append) == "B  x"
    assert unset == ["C"]


@pytest.mark.parametrize("case", DOTENV["parse"], ids=[c["input"] for c in DOTENV["parse"]])
def test_dotenv_parse_table(case: dict[str, str]) -> None:
    assert parse_dotenv(case["input"], "t.env", {})[case["key"]] == case["value"]


@pytest.mark.parametrize("case", DOTENV["expanding"], ids=[c["input"] for c in DOTENV["expanding"]])
def test_dotenv_expanding_table(case: dict[str, Any]) -> None:
    found = parse_dotenv(case["input"], "t.env", {})
    assert {k: found.get(k) for k in case["expected"]} == case["expected"]


@pytest.mark.parametrize("text", DOTENV["errors"])
def test_dotenv_errors_table(text: str) -> None:
    with pytest.raises(StackFileError) as caught:
        parse_dotenv(text, "t.env", {})
    assert str(caught.value).startswith("t.env:1: ")


def test_dotenv_inherits_keys_without_value_and_environment_wins_in_expansion() -> None:
    found = parse_dotenv("A\nB\nC=$A-$HOME_X\n", "t.env", {"A": "from-env", "HOME_X": "h"})
    assert found == {"A": "from-env", "C": "from-env-h"}


def _project(tmp_path: Path, body: dict[str, Any]) -> Path:
    project = tmp_path / "proj"
    project.mkdir(exist_ok=True)
    (project / "compose.yaml").write_text(json.dumps(body))  # JSON is YAML
    return project


def _compose_form(tmp_path: Path, service: dict[str, Any], **top: Any) -> dict[str, Any]:
    from envkit.compose import load, to_compose

    project = _project(tmp_path, {"services": {"s": {"image": "busybox", **service}}, **top})
    return to_compose(load(project / "compose.yaml", environ={"HOME": "/home/u"}))


def _refused(item: object) -> str | None:
    text = json.dumps(item)
    return next((why for key, why in EXPECTED_REFUSALS.items() if key in text), None)


@pytest.mark.parametrize(
    "case", PORTS["cases"], ids=[json.dumps(c["input"]) for c in PORTS["cases"]]
)
def test_ports_table(tmp_path: Path, case: dict[str, Any]) -> None:
    if _refused(case["input"]):
        with pytest.raises(StackFileError, match="range"):
            _compose_form(tmp_path, {"ports": [case["input"]]})
        return
    ours = _compose_form(tmp_path, {"ports": [case["input"]]})["services"]["s"]["ports"]
    keys = ("target", "published", "protocol")
    expected = [
        {k: p.get(k) for k in keys} | {"host_ip": p.get("host_ip", "127.0.0.1")}
        for p in case["compose"]
    ]
    got = [{k: p.get(k) for k in keys} | {"host_ip": p["host_ip"]} for p in ours]
    assert sorted(got, key=_key) == sorted(expected, key=_key)


def _key(p: dict[str, Any]) -> tuple[Any, ...]:
    return (p["target"], p["host_ip"], p["protocol"])


@pytest.mark.parametrize(
    "case", VOLUMES["cases"], ids=[json.dumps(c["input"]) for c in VOLUMES["cases"]]
)
def test_volumes_table(tmp_path: Path, case: dict[str, Any]) -> None:
    top: dict[str, Any] = {"volumes": {"db-data": {}}}
    if _refused(case["input"]):
        with pytest.raises(StackFileError, match="not supported"):
            _compose_form(tmp_path, {"volumes": [case["input"]]}, **top)
        return
    service = _compose_form(tmp_path, {"volumes": [case["input"]]}, **top)["services"]["s"]
    project = tmp_path / "proj"
    places = {"$PROJECT": str(project), "$PARENT": str(tmp_path), "$HOME": "/home/u"}
    expected = json.loads(_replace(json.dumps(case["compose"]), places))
    for mount in expected:
        if mount["type"] == "tmpfs":
            size = mount.get("tmpfs", {}).get("size")
            assert service["tmpfs"] == [mount["target"] + (f":size={size}" if size else "")]
            continue
        keys = ("type", "source", "target")  # an anonymous volume has no source
        ours = {k: v for k, v in service["volumes"][0].items() if k in keys}
        assert ours == {k: mount[k] for k in keys if k in mount}
        assert service["volumes"][0].get("read_only", False) == mount.get("read_only", False)


def _replace(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace(key, value)
    return text


def test_tables_are_not_empty() -> None:
    assert len(INTERPOLATION["cases"]) >= 60
    assert len(DOTENV["parse"]) >= 50
    assert len(PORTS["cases"]) == 13
    assert len(VOLUMES["cases"]) == 17


def test_refusals_name_the_line(tmp_path: Path) -> None:
    from envkit.compose import load

    project = tmp_path / "p"
    project.mkdir()
    (project / "compose.yaml").write_text(
        "services:\n  s:\n    image: busybox\n    ports:\n      - '8000-9000:80'\n"
    )
    with pytest.raises(EnvkitError) as caught:
        load(project / "compose.yaml")
    assert "compose.yaml:5: services.s.ports[0]" in str(caught.value)
