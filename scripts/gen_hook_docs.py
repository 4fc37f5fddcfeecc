"""Write docs/reference/hooks.md from the hookspecs' and interfaces' docstrings.

Run after changing a hook or an interface: ``.venv/bin/python scripts/gen_hook_docs.py``.
tests/unit/test_docs.py fails when the file is out of date or a hook's docstring does not
name each of its arguments.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "docs" / "reference" / "hooks.md"


def hooks() -> list[Any]:
    """The hook specifications, in the order of hookspecs.py."""
    from envkit.plugins import hookspecs

    found = [
        obj
        for name, obj in vars(hookspecs).items()
        if name.startswith("envkit_") and inspect.isfunction(obj)
    ]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def interfaces() -> list[type]:
    """The protocols and value types of envkit.plugins.interfaces, in source order."""
    from envkit.plugins import interfaces as module

    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module.__name__
    ]
    return sorted(found, key=lambda c: inspect.getsourcelines(c)[1])


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _signature(func: Any, skip_self: bool = False) -> str:
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if not (skip_self and p.name == "self")]
    text = ", ".join(f"{p.name}: {p.annotation}" for p in params)
    return f"({text}) -> {sig.return_annotation}"


def _render_class(cls: type) -> list[str]:
    from envkit import records

    parts = [f"### `{cls.__name__}`\n", _doc(cls) + "\n"]
    if records.is_record(cls):
        hints: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            hints.update(vars(klass).get("__annotations__", {}))
        rows = [f"- `{f.name}: {hints[f.name]}`" for f in records.fields(cls)]
        parts.append("Fields:\n\n" + "\n".join(rows) + "\n")
    annotations = {
        k: v for k, v in vars(cls).get("__annotations__", {}).items() if not k.startswith("_")
    }
    if annotations and not records.is_record(cls):
        rows = [f"- `{name}: {kind}`" for name, kind in annotations.items()]
        parts.append("Attributes:\n\n" + "\n".join(rows) + "\n")
    methods = []
    for name, member in vars(cls).items():
        func = member.__func__ if isinstance(member, classmethod) else member
        if name.startswith("_") or not inspect.isfunction(func):
            continue
        methods.append(
            f"- `{name}{_signature(func, skip_self=True)}`"
            + (f"  \n  {' '.join(_doc(func).split())}" if _doc(func) else "")
        )
    if methods:
        parts.append("Methods:\n\n" + "\n".join(methods) + "\n")
    return parts


def render() -> str:
    parts = [
        "# Hook reference\n",
        "Generated from `envkit/plugins/hookspecs.py` and `envkit/plugins/interfaces.py` by "
        "`scripts/gen_hook_docs.py`; do not edit by hand. The "
        "[plugin author's guide](../plugin-guide.md) shows how to use them, "
        "[plugins.md](plugins.md) how envkit loads plugins.\n",
        "A plugin implements any subset of the hooks with functions of the same name "
        "marked `@envkit.plugins.hookimpl`, taking any subset of the arguments (by name).\n",
        "## Hooks\n",
    ]
    for hook in hooks():
        parts.append(f"### `{hook.__name__}{_signature(hook)}`\n")
        parts.append(_doc(hook) + "\n")
    parts.append("## Interfaces and values\n")
    parts.append(
        "Protocols are structural: a plugin's class needs the attributes and methods, "
        "not an envkit base class.\n"
    )
    for cls in interfaces():
        parts.extend(_render_class(cls))
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
