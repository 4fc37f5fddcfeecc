"""The mapping goes both ways: for every compose file the tests carry, envkit's
normalised form (``envkit config``) loads back to an equal Stack and prints the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envkit.compose import load, to_compose

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "compose"
SPEC = json.loads((DATA / "spec" / "index.json").read_text())

FILES = [
    *((DATA / "spec" / e["dir"], "compose.yaml") for e in SPEC["examples"] if "refused" not in e),
    (ROOT / "examples" / "compose", "compose.yaml"),
    (ROOT / "examples" / "compose" / "busybox", "compose.yaml"),
    (DATA / "compose-go" / "simple", "compose-with-variables.yaml"),
    (DATA / "compose-go" / "env-file", "compose-with-env-files.yaml"),
]


@pytest.mark.parametrize(
    ("folder", "name"), FILES, ids=[f"{f.relative_to(ROOT)}/{n}" for f, n in FILES]
)
def test_normalised_form_loads_back(folder: Path, name: str, tmp_path: Path) -> None:
    import yaml

    here = tmp_path / "project"
    shutil.copytree(folder, here)
    first = load(here / name, environ={"HOME": str(tmp_path)})
    form = to_compose(first)
    again = tmp_path / "again"
    again.mkdir()
    (again / "compose.yaml").write_text(yaml.safe_dump(form, sort_keys=False))
    second = load(again / "compose.yaml", environ={"HOME": str(tmp_path)})
    assert second.stack == first.stack
    assert to_compose(second) == form
