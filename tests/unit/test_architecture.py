"""The layers of envkit, checked: no module imports a layer above its own.

docs/dev/architecture.md draws the house; this test is its enforcement. It reads the
syntax tree of every module of ``envkit`` (nothing is imported) and collects every edge
one module has to another:

- ``import x`` and ``from x import y`` at module level and inside functions (a lazy import
  is still a dependency: it runs, only later);
- ``importlib.import_module("x")`` with a literal name;
- any other string literal that is the exact dotted name of an envkit module (a plugin or
  a command module loaded by name later).

Imports under ``if TYPE_CHECKING:`` are left out: they never run, and annotations may name
a type from a layer above (``Image.build`` returns a build result).

Each package (``envkit/<name>/`` or ``envkit/<name>.py``) sits in one layer of
:data:`LAYERS`; an edge may point to its own layer or one below, never above. Packages of
the same layer may import each other only without a cycle (checked with the rest:
no cycle between packages at all).
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import textwrap
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "envkit"

#: Bottom to top. A package may import its own layer's packages (without a cycle) and any
#: below. docs/dev/architecture.md draws it and says what each package holds.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("errors", "lazy_names", "records", "settings", "wiring")),
    ("host", ("host",)),
    ("oci", ("oci",)),
    # Beside the house: data, reaching build and stack only through its engine (see
    # test_spec_imports_only_the_foundation_and_oci); here so every layer above may use it.
    ("spec", ("spec",)),
    ("store", ("store",)),
    ("registry", ("registry",)),
    ("pulling", ("pulling",)),
    # The frame: as low as it can be (it needs only the store and registry helpers it
    # re-exports), so every layer that acts can call hooks.
    ("plugins", ("plugins",)),
    ("runtime", ("runtime",)),
    ("network", ("network",)),
    ("container", ("container",)),
    ("build", ("build",)),
    ("stack", ("stack", "compose")),
    # The composition root (builtin, envkit/__init__.py) and what only calls the library.
    ("top", ("builtin", "cli", "recipes", "testing", "(root)", "__main__")),
)

#: (importing package, imported package): why this upward edge is allowed.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _layer_index() -> dict[str, int]:
    return {pkg: i for i, (_, pkgs) in enumerate(LAYERS) for pkg in pkgs}


@dataclass(frozen=True)
class Edge:
    """One module's dependency on another, where it is written."""

    source: str  # dotted module name
    target: str  # dotted module name (or the package when the module is unknown)
    path: Path
    line: int
    kind: str  # "import", "import_module" or "string"

    @property
    def where(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    """``envkit.spec.image`` for ``<root>/envkit/spec/image.py``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The package key of a module: ``spec`` for ``envkit.spec.image``, ``(root)`` for
    ``envkit`` itself, ``errors`` for ``envkit.errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def module_edges(path: Path, root: Path, modules: frozenset[str]) -> Iterator[Edge]:
    """The run-time dependencies of one module of the tree at ``root``."""
    top = root.name
    source = module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    named: set[int] = set()  # the literals of import_module calls, counted once
    for node in _runtime_nodes(tree):
        targets: list[tuple[str, str]] = []
        if isinstance(node, ast.Import):
            targets = [(alias.name, "import") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = source.split(".") if is_package else source.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                imported = ".".join([*base, *([node.module] if node.module else [])])
            else:
                imported = node.module or ""
            # `from envkit import spec` depends on envkit.spec, not only on envkit.
            subs = [f"{imported}.{a.name}" for a in node.names if f"{imported}.{a.name}" in modules]
            targets = [(t, "import") for t in subs] or [(imported, "import")]
        elif isinstance(node, ast.Call) and _is_import_module(node):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                targets = [(arg.value, "import_module")]
                named.add(id(arg))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in modules
            and node.value != top
            and id(node) not in named
        ):
            targets = [(node.value, "string")]
        for target, kind in targets:
            if target == top or target.startswith(top + "."):
                yield Edge(source, target, path, getattr(node, "lineno", 0), kind)


def _is_import_module(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def all_edges(root: Path) -> list[Edge]:
    """Every edge between modules of the package tree at ``root`` (e.g. ``envkit/``)."""
    paths = sorted(root.rglob("*.py"))
    modules = frozenset(module_name(p, root) for p in paths)
    return [edge for p in paths for edge in module_edges(p, root, modules)]


def upward_edges(
    edges: list[Edge],
    layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS,
    exceptions: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    """One line per edge that points to a layer above its module's own."""
    index = {pkg: i for i, (_, pkgs) in enumerate(layers) for pkg in pkgs}
    allowed = EXCEPTIONS if exceptions is None else exceptions
    problems = []
    for edge in edges:
        a, b = package_of(edge.source), package_of(edge.target)
        if a == b or (a, b) in allowed:
            continue
        if a not in index or b not in index:
            problems.append(f"{edge.where}: package {a if a not in index else b} has no layer")
            continue
        if index[b] > index[a]:
            problems.append(
                f"{edge.where}: {edge.source} ({layers[index[a]][0]}) imports {edge.target} "
                f"({layers[index[b]][0]}), a layer above ({edge.kind})"
            )
    return problems


def package_cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        a, b = package_of(edge.source), package_of(edge.target)
        graph.setdefault(a, set())
        graph.setdefault(b, set())
        if a != b:
            graph[a].add(b)
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        on_stack.append(node)
        for succ in sorted(graph[node]):
            if succ not in order:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], order[succ])
        if low[node] == order[node]:
            group = []
            while True:
                member = on_stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return groups


def _cycle_witness(edges: list[Edge], group: list[str]) -> str:
    members = set(group)
    shown: dict[tuple[str, str], str] = {}
    for edge in edges:
        a, b = package_of(edge.source), package_of(edge.target)
        if a != b and a in members and b in members:
            shown.setdefault((a, b), edge.where)
    return "; ".join(f"{a} -> {b} ({where})" for (a, b), where in sorted(shown.items()))


# -- the checks on envkit ---------------------------------------------------------------


def test_every_package_has_a_layer() -> None:
    index = _layer_index()
    packages = {package_of(module_name(p, PACKAGE)) for p in PACKAGE.rglob("*.py")}
    assert sorted(packages - set(index)) == []
    assert sorted(set(index) - packages) == [], "a layer names a package that is gone"


def test_no_import_points_to_a_layer_above() -> None:
    problems = upward_edges(all_edges(PACKAGE))
    assert problems == [], "upward imports:\n" + "\n".join(problems)


def test_every_exception_is_still_needed() -> None:
    used = {(package_of(e.source), package_of(e.target)) for e in all_edges(PACKAGE)}
    assert sorted(set(EXCEPTIONS) - used) == []


def test_no_import_cycle_between_packages() -> None:
    edges = all_edges(PACKAGE)
    cycles = package_cycles(edges)
    assert cycles == [], "\n".join(_cycle_witness(edges, group) for group in cycles)


def test_spec_imports_only_the_foundation_and_oci() -> None:
    """spec is data beside the house: at run time it reaches build, stack, compose and
    the plugins only through the engine the top layer registered (envkit.spec.engine)."""
    allowed = {"spec", "oci", *LAYERS[0][1]}
    found = [
        f"{e.where}: {e.target}"
        for e in all_edges(PACKAGE)
        if package_of(e.source) == "spec" and package_of(e.target) not in allowed
    ]
    assert found == []


def test_the_plugin_frame_holds_no_plugin() -> None:
    """envkit/plugins/ is the frame (hookspecs, manager, interfaces); every hook
    implementation lives in envkit/builtin/ (or the CLI's commands in envkit/cli/)."""
    found = []
    for path in sorted((PACKAGE / "plugins").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "hookimpl" for d in node.decorator_list
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name}")
    assert found == []


def _run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return done.stdout.strip()


def test_the_library_never_loads_the_command_line() -> None:
    """A library process's plugin manager has envkit's built-in parts and no CLI."""
    out = _run_python(
        "import sys; from envkit.plugins.manager import get_manager; m = get_manager(); "
        "print(sorted(m.image_sources()), sorted(m.commands()), "
        "sorted(n for n in sys.modules if n.startswith('envkit.cli')))"
    )
    assert out == "['debian', 'oci-archive', 'ref'] [] []"


def test_the_spec_engine_is_there_however_spec_is_reached() -> None:
    """Python runs envkit/__init__.py before any envkit module, so the engine the top
    layer registers is there even for ``from envkit.spec.image import Image``."""
    out = _run_python(
        "from envkit.spec.image import Image; from envkit.spec.engine import engine; "
        "print(type(engine()).__name__)"
    )
    assert out == "BuiltinEngine"


# -- lazy imports say why ----------------------------------------------------------------

#: Unexplained lazy imports per package, as found when this test was written (issue 19):
#: the count may only go down. A package not listed must have none.
LAZY_BASELINE: dict[str, int] = {}

#: Packages whose lazy imports are explained once, for the whole package.
LAZY_EXPLAINED: dict[str, str] = {
    "cli": "each verb's module is imported to build its parser (envkit/cli/__init__.py's "
    "fast path); what the verb does is imported in its run(), as pip's commands_dict",
}


def _comment_lines(source: str) -> set[int]:
    return {
        tok.start[0]
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }


def unexplained_lazy_imports(path: Path) -> list[int]:
    """Lines of the imports inside functions of ``path`` that carry no comment: on their
    line, on the line above, or above the first import of their run of imports."""
    source = path.read_text(encoding="utf-8")
    comments = _comment_lines(source)
    found: list[int] = []

    def block(body: list[ast.stmt], in_function: bool) -> None:
        explained = False
        for stmt in body:
            if isinstance(stmt, ast.Import | ast.ImportFrom) and in_function:
                explained = stmt.lineno in comments or stmt.lineno - 1 in comments or explained
                if not explained:
                    found.append(stmt.lineno)
            else:
                explained = False
            for name in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(stmt, name, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.AST):
                    nested = in_function or isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
                    block([s for s in inner if isinstance(s, ast.stmt)], nested)
                    for handler in inner:
                        if isinstance(handler, ast.ExceptHandler):
                            block(handler.body, nested)

    block(ast.parse(source).body, False)
    return found


def _unexplained_by_package() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        package = package_of(module_name(path, PACKAGE))
        for line in unexplained_lazy_imports(path):
            found.setdefault(package, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def test_lazy_imports_say_why() -> None:
    """An import inside a function is there for start-up speed (or an error path only),
    points downward (the layer test) and says so in a comment."""
    found = _unexplained_by_package()
    over = {
        package: lines
        for package, lines in found.items()
        if len(lines) > LAZY_BASELINE.get(package, 0) and package not in LAZY_EXPLAINED
    }
    assert over == {}, "lazy imports without a comment saying why:\n" + "\n".join(
        line for lines in over.values() for line in lines
    )


def test_the_lazy_import_check_sees_what_it_should(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\n"
        "def f():\n"
        "    import json\n"  # 3: unexplained
        "    # lazy for start-up\n"
        "    import csv\n"
        "    import ast\n"  # explained by the comment above its run
        "    x = 1\n"
        "    import re  # lazy: error path only\n"
        "    if x:\n"
        "        import zlib\n"  # 10: unexplained
        "    return x\n"
    )
    assert unexplained_lazy_imports(module) == [3, 10]


# -- plugins and examples use public names only -----------------------------------------

#: The modules a plugin or an example may import from envkit, each by its ``__all__``.
PUBLIC_MODULES = (
    "envkit",
    "envkit.errors",
    "envkit.plugins",
    "envkit.recipes",
    "envkit.testing",
    "envkit.testing.backend_suite",  # the conformance suite a backend's tests subclass
)
#: Code outside envkit/ that must keep to :data:`PUBLIC_MODULES`: the first-party plugin
#: (with its tests) and the examples.
PUBLIC_USERS = (ROOT / "plugins/envkit-oci-volumes", ROOT / "examples")


def public_names(module: str) -> set[str]:
    """What ``module`` exports: its ``__all__``; for envkit.errors, its public classes."""
    import importlib

    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    return set(names)


def non_public_imports(paths: list[Path]) -> list[str]:
    """``file:line: name`` of each import of envkit that is not a public name."""
    exported = {module: public_names(module) for module in PUBLIC_MODULES}
    problems = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    if top == "envkit" and alias.name not in PUBLIC_MODULES:
                        problems.append(f"{path}:{node.lineno}: import {alias.name}")
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                if node.module.split(".")[0] != "envkit":
                    continue
                if node.module not in exported:
                    problems.append(f"{path}:{node.lineno}: from {node.module}")
                    continue
                for alias in node.names:
                    if alias.name not in exported[node.module]:
                        problems.append(
                            f"{path}:{node.lineno}: {alias.name} is not in {node.module}.__all__"
                        )
    return problems


def test_the_first_party_plugin_and_the_examples_import_only_public_names() -> None:
    paths = sorted(p for root in PUBLIC_USERS for p in root.rglob("*.py"))
    assert len(paths) > 5
    assert non_public_imports(paths) == []


def test_a_plugin_importing_an_internal_module_is_reported(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "from envkit.plugins import hookimpl\n"
        "from envkit.plugins.interfaces import VolumeBackend\n"
        "from envkit.plugins import no_such_name\n"
        "def f():\n    import envkit.store.store\n"
    )
    assert [p.split(": ", 1)[1] for p in non_public_imports([plugin])] == [
        "from envkit.plugins.interfaces",
        "no_such_name is not in envkit.plugins.__all__",
        "import envkit.store.store",
    ]


def test_envkit_plugins_exports_every_name_it_lists() -> None:
    import envkit.plugins

    for name in envkit.plugins.__all__:
        assert getattr(envkit.plugins, name) is not None, name


# -- the checker checked: a planted upward import is reported --------------------------


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "envkit"
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return root


PLANTED_LAYERS = (("low", ("low",)), ("high", ("high",)), ("top", ("(root)",)))


@pytest.mark.parametrize(
    ("source", "kind", "line"),
    [
        ("from envkit.high import thing\n", "import", 1),
        ("import envkit.high.thing\n", "import", 1),
        ("from envkit import high\n", "import", 1),
        ("from .. import high\n", "import", 1),
        ("def f():\n    from envkit.high.thing import x\n    return x\n", "import", 2),
        ("import importlib\nimportlib.import_module('envkit.high.thing')\n", "import_module", 2),
        ("PLUGINS = (\n    'envkit.high.thing',\n)\n", "string", 2),
    ],
)
def test_a_planted_upward_import_is_reported(
    tmp_path: Path, source: str, kind: str, line: int
) -> None:
    root = _plant(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/planted.py": source,
            "high/__init__.py": "",
            "high/thing.py": "x = 1\n",
        },
    )
    problems = upward_edges(all_edges(root), PLANTED_LAYERS, {})
    assert len(problems) == 1, problems
    assert f"low/planted.py:{line}: " in problems[0]
    assert "(low) imports envkit.high" in problems[0] and "(high)" in problems[0]
    assert f"({kind})" in problems[0]


def test_downward_and_type_checking_imports_are_not_reported(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "__init__.py": "from envkit.high import thing\n",
            "low/__init__.py": "",
            "low/planted.py": (
                "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from envkit.high import thing\n"
                "NAME = 'envkit.high.thing is a module'\n"
            ),
            "high/__init__.py": "",
            "high/thing.py": "from envkit.low import planted\n",
        },
    )
    assert upward_edges(all_edges(root), PLANTED_LAYERS, {}) == []


def test_a_listed_exception_is_not_reported(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {"__init__.py": "", "low/__init__.py": "from envkit.high import thing\n",
         "high/__init__.py": "", "high/thing.py": ""},
    )  # fmt: skip
    assert upward_edges(all_edges(root), PLANTED_LAYERS, {("low", "high"): "why"}) == []


def test_a_planted_cycle_is_reported(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "__init__.py": "",
            "low/__init__.py": "def f():\n    import envkit.high\n",
            "high/__init__.py": "import envkit.low\n",
        },
    )
    assert package_cycles(all_edges(root)) == [["high", "low"]]
