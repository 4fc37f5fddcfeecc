"""One way to defer imports to type checking: the hand-rolled ``TYPE_CHECKING`` constant.

``from typing import TYPE_CHECKING`` imports :mod:`typing`, about 2 ms that
``envkit run --rm IMAGE true`` (33 ms, warm) does not otherwise spend: typing is not
imported on that path at all (``python -X importtime``; it is on ``--help``, through
pluggy, and on ``pull``, through requests). Type checkers honour any module-level
constant of that name, so every module that defers imports writes the same line,
:data:`LINE`, right above its ``if TYPE_CHECKING:`` block.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINE = (
    "TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing"
)


def offences(path: Path, root: Path = ROOT) -> list[str]:
    """What in the module at ``path`` departs from the one way."""
    source = path.read_text()
    tree = ast.parse(source, str(path))
    rel = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "TYPE_CHECKING" for a in node.names):
            found.append(f"{rel}:{node.lineno}: imports TYPE_CHECKING; write {LINE!r}")
        elif isinstance(node, ast.Attribute) and node.attr == "TYPE_CHECKING":
            found.append(f"{rel}:{node.lineno}: reads typing.TYPE_CHECKING; write {LINE!r}")
    uses = any(isinstance(n, ast.Name) and n.id == "TYPE_CHECKING" for n in ast.walk(tree))
    defined = source.splitlines().count(LINE)
    if uses and defined != 1:
        found.append(f"{rel}: uses TYPE_CHECKING, so it defines it once as {LINE!r}")
    return found


def test_every_module_defers_imports_the_same_way() -> None:
    problems = [p for path in sorted((ROOT / "envkit").rglob("*.py")) for p in offences(path)]
    assert problems == []


def test_the_check_finds_the_other_ways(tmp_path: Path) -> None:
    cases = {
        "imported.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import os\n",
        "attribute.py": "import typing\nif typing.TYPE_CHECKING:\n    import os\n",
        "other_comment.py": "TYPE_CHECKING = False  # mine\nif TYPE_CHECKING:\n    import os\n",
        "good.py": f"{LINE}\nif TYPE_CHECKING:\n    import os\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    counts = {name: len(offences(tmp_path / name, tmp_path)) for name in cases}
    assert counts == {"imported.py": 2, "attribute.py": 1, "other_comment.py": 1, "good.py": 0}
