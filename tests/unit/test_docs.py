"""Docs that are generated or must mention every part stay current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts/gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs/reference/cli.md").read_text()
    assert current == module.render(), "run: .venv/bin/python scripts/gen_cli_docs.py"


def test_every_hook_is_documented() -> None:
    from envkit.plugins import hookspecs

    text = (ROOT / "docs/reference/plugins.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("envkit_")]
    assert hooks
    for name in hooks:
        assert f"`{name}()`" in text, f"{name} is missing from docs/reference/plugins.md"
