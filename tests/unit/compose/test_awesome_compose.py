"""Real-world compose files: every project of docker/awesome-compose
(tests/data/compose/awesome, index.json names the commit). Each loads, or is refused
with the recorded line for a key envkit does not support (static addresses,
a wasm ``runtime``); a load round-trips through
envkit's normalised form. tests/unit/compose/test_peers.py compares each with Docker
Compose's own ``config`` where it is installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from envkit.compose import load, to_compose
from envkit.errors import StackFileError

DATA = Path(__file__).parents[2] / "data" / "compose" / "awesome"
INDEX = json.loads((DATA / "index.json").read_text())
PROJECTS: list[dict[str, Any]] = INDEX["projects"]


def test_the_corpus_is_whole() -> None:
    assert len(PROJECTS) == 39
    assert sum("refused" in p for p in PROJECTS) == 3


@pytest.mark.parametrize("project", PROJECTS, ids=[p["dir"] for p in PROJECTS])
def test_an_awesome_compose_project_loads_or_is_refused_naming_the_line(
    project: dict[str, Any], tmp_path: Path, envkit_home: Path
) -> None:
    folder = tmp_path / project["dir"]
    shutil.copytree(DATA / project["dir"], folder)
    path = folder / project["file"]
    if "refused" in project:
        with pytest.raises(StackFileError) as caught:
            load(path, environ={})
        assert caught.value.exit_code == 2
        assert str(caught.value).startswith(f"{folder}/{project['refused']}")
        return
    loaded = load(path, environ={})
    again = tmp_path / "again" / project["dir"]
    again.mkdir(parents=True)
    (again / "compose.yaml").write_text(yaml.safe_dump(to_compose(loaded)))
    assert load(again / "compose.yaml", environ={}).stack == loaded.stack
