"""Docs that are generated or must mention every part stay current."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

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


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hook_reference_is_current() -> None:
    module = _load_script("gen_hook_docs")
    current = (ROOT / "docs/reference/hooks.md").read_text()
    assert current == module.render(), "run: .venv/bin/python scripts/gen_hook_docs.py"


def test_every_hook_argument_is_documented() -> None:
    import inspect

    module = _load_script("gen_hook_docs")
    hooks = module.hooks()
    text = (ROOT / "docs/reference/hooks.md").read_text()
    assert len(hooks) >= 7
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        assert doc, f"{hook.__name__} has no docstring"
        assert f"### `{hook.__name__}(" in text
        for arg in inspect.signature(hook).parameters:
            assert f"``{arg}``" in doc, f"{hook.__name__}: argument {arg} is not documented"


def test_every_interface_method_is_documented() -> None:
    import inspect

    module = _load_script("gen_hook_docs")
    classes = module.interfaces()
    # The interfaces a plugin author implements must be among those checked (not an empty list).
    assert {"Command", "ImageSource", "SecretProvider", "VolumeBackend"} <= {
        cls.__name__ for cls in classes
    }
    checked: list[str] = []
    for cls in classes:
        assert inspect.getdoc(cls), f"{cls.__name__} has no docstring"
        for name, member in vars(cls).items():
            if not name.startswith("_") and inspect.isfunction(member):
                assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"
                checked.append(f"{cls.__name__}.{name}")
    assert {"VolumeBackend.create", "VolumeBackend.mount"} <= set(checked), checked


def test_readme_example_is_a_valid_stack() -> None:
    import re

    from envkit import Stack

    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    stack = namespace["stack"]
    assert isinstance(stack, Stack)
    assert stack.start_order() == ["db", "web"]
