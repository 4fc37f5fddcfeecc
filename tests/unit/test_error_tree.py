"""One error tree: every exception a caller can see is defined in ``envkit/errors.py``.

The scan reads the AST of every module under ``envkit/`` and finds each class that
derives, directly or through other classes, from ``BaseException`` (names are followed
through ``import`` and ``from ... import`` to envkit modules, the standard library and
the builtins). A class outside ``errors.py`` fails the test unless :data:`INTERNAL`
lists it with why it never reaches a caller; such a class may not be imported outside
the package named with it either. The tree drawn in ``errors.py``'s docstring (as
httpx draws its own in ``_exceptions.py``) must match the classes defined there.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import envkit.errors

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "envkit"
ERRORS = "envkit/errors.py"


@dataclass(frozen=True, slots=True)
class Internal:
    """An exception allowed outside errors.py: it never leaves ``scope`` (a package or
    module path prefix), and ``why`` says how it is turned into an envkit error."""

    scope: str
    why: str


_TRANSPORT = Internal(
    "envkit/registry/",
    "the HTTP transport's failures below HTTP; registry/client.py turns each into a "
    "RegistryError naming the registry (retrying the ones worth retrying)",
)

#: ``path: {class: Internal}``: exceptions that are control flow inside their package.
INTERNAL: dict[str, dict[str, Internal]] = {
    "envkit/records.py": {
        "FrozenInstanceError": Internal(
            "envkit/records.py",
            "a programming error, not a failure envkit reports: assigning to an immutable "
            "record raises it as a frozen dataclass raises dataclasses.FrozenInstanceError "
            "(an AttributeError); nothing in envkit raises it on purpose or catches it",
        ),
    },
    "envkit/registry/transport.py": {
        "TransportError": _TRANSPORT,
        "NameResolutionError": _TRANSPORT,
        "RequestError": _TRANSPORT,
        "TLSError": _TRANSPORT,
        "BodyError": _TRANSPORT,
    },
    "envkit/build/dockerfile_parser.py": {
        "ParseError": Internal(
            "envkit/build/",
            "BuildKit's parser's refusal with its line; build/dockerfile.py raises it "
            "again as a SpecError naming file:line",
        ),
        "_NotStringArray": Internal(
            "envkit/build/dockerfile_parser.py",
            "not a JSON string array: the parser falls back to the shell form, in the same module",
        ),
    },
    "envkit/build/dockerfile_flags.py": {
        "FlagError": Internal(
            "envkit/build/",
            "a refused instruction flag (--mount=...); build/dockerfile.py raises it "
            "again as an error naming the Dockerfile line",
        ),
    },
}


@dataclass(frozen=True, slots=True)
class Found:
    path: str  # relative to the repository, "envkit/x/y.py"
    name: str
    line: int


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *(node.module.split(".") if node.module else [])])


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.C`` as ``["a", "b", "C"]``; ``None`` for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else [*inner, node.attr]
    return None


def _is_external_exception(module: str, name: str) -> bool:
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    return isinstance(value, type) and issubclass(value, BaseException)


def exception_classes(root: Path) -> list[Found]:
    """Every class under ``root/envkit`` deriving from BaseException (AST only for
    envkit's own modules; other modules' names are imported to be checked)."""
    modules: dict[str, tuple[str, ast.Module]] = {}
    for path in sorted((root / "envkit").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        modules[_module_name(path, root)] = (rel, ast.parse(path.read_text(), rel))

    classes: dict[tuple[str, str], tuple[ast.ClassDef, str]] = {}
    imports: dict[str, dict[str, tuple[str, str | None]]] = {}  # alias -> (module, attr)
    for module, (rel, tree) in modules.items():
        names: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault((module, node.name), (node, rel))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    names[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0],
                        None,
                    )
            elif isinstance(node, ast.ImportFrom):
                source = _resolve_from(module, rel.endswith("/__init__.py"), node)
                for alias in node.names:
                    names[alias.asname or alias.name] = (source, alias.name)
        imports[module] = names

    memo: dict[tuple[str, str], bool] = {}

    def named(module: str, name: str, seen: frozenset[tuple[str, str]]) -> bool:
        """Whether ``name`` as seen in ``module`` is an exception class."""
        if (module, name) in classes:
            return is_exception(module, name, seen)
        target = imports.get(module, {}).get(name)
        if target is not None:
            source, attr = target
            if attr is None:
                return False  # a module, not a class
            if source in modules or f"{source}.{attr}" in modules:
                return named(source, attr, seen)
            return _is_external_exception(source, attr)
        value = getattr(builtins, name, None)
        return isinstance(value, type) and issubclass(value, BaseException)

    def base_is_exception(module: str, base: ast.expr, seen: frozenset[tuple[str, str]]) -> bool:
        parts = _dotted(base)
        if parts is None:
            return False
        if len(parts) == 1:
            return named(module, parts[0], seen)
        target = imports.get(module, {}).get(parts[0])
        if target is None:
            return False
        source, attr = target
        owner = ".".join([source, *([attr] if attr else []), *parts[1:-1]])
        if owner in modules:
            return named(owner, parts[-1], seen)
        return _is_external_exception(owner, parts[-1])

    def is_exception(module: str, name: str, seen: frozenset[tuple[str, str]]) -> bool:
        key = (module, name)
        if key in memo:
            return memo[key]
        if key in seen:
            return False
        node, _ = classes[key]
        result = any(base_is_exception(module, b, seen | {key}) for b in node.bases)
        memo[key] = result
        return result

    found = [
        Found(rel, name, node.lineno)
        for (module, name), (node, rel) in classes.items()
        if is_exception(module, name, frozenset())
    ]
    return sorted(found, key=lambda f: (f.path, f.line))


def misplaced(found: list[Found], internal: dict[str, dict[str, Internal]]) -> list[str]:
    """The exception classes defined outside errors.py and not listed as internal."""
    return [
        f"{f.path}:{f.line}: {f.name}: define it in envkit/errors.py (or, if it never "
        "leaves its module, list it in INTERNAL with why)"
        for f in found
        if f.path != ERRORS and f.name not in internal.get(f.path, {})
    ]


def test_every_exception_a_caller_can_see_is_in_errors_py() -> None:
    assert misplaced(exception_classes(ROOT), INTERNAL) == []


def test_the_internal_list_names_only_classes_that_exist() -> None:
    found = {(f.path, f.name) for f in exception_classes(ROOT)}
    listed = {(path, name) for path, names in INTERNAL.items() for name in names}
    assert sorted(listed - found) == []


def test_internal_exceptions_are_not_imported_outside_their_scope() -> None:
    where = {
        name: (path, why.scope) for path, names in INTERNAL.items() for name, why in names.items()
    }
    leaks = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            source = node.module.replace(".", "/")
            for alias in node.names:
                home = where.get(alias.name)
                if home is None or not home[0].startswith(source):
                    continue
                if not rel.startswith(home[1]):
                    leaks.append(f"{rel}:{node.lineno}: imports {alias.name} ({home[0]})")
    assert leaks == []


def test_a_planted_exception_outside_errors_py_fails(tmp_path: Path) -> None:
    """A test of the scan: an exception defined elsewhere, directly, through an envkit
    base class, through a stdlib class and through another module's class, is found."""
    package = tmp_path / "envkit"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("class EnvkitError(Exception):\n    pass\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text(
        textwrap.dedent(
            """\
            import json
            from envkit.errors import EnvkitError
            from json import JSONDecodeError as Bad

            class Direct(ValueError): ...
            class Through(EnvkitError): ...
            class Stdlib(json.JSONDecodeError): ...
            class Aliased(Bad): ...
            class NotOne: ...
            """
        )
    )
    (package / "sub" / "b.py").write_text(
        "from ..sub import a\nfrom .a import Through\n"
        "class Second(a.Direct): ...\nclass Third(Through): ...\n"
    )
    found = exception_classes(tmp_path)
    assert [(f.path, f.name) for f in found] == [
        ("envkit/errors.py", "EnvkitError"),
        ("envkit/sub/a.py", "Direct"),
        ("envkit/sub/a.py", "Through"),
        ("envkit/sub/a.py", "Stdlib"),
        ("envkit/sub/a.py", "Aliased"),
        ("envkit/sub/b.py", "Second"),
        ("envkit/sub/b.py", "Third"),
    ]
    assert len(misplaced(found, {})) == 6
    allowed = {"envkit/sub/a.py": {"Direct": Internal("envkit/sub/", "a test")}}
    assert len(misplaced(found, allowed)) == 5


# -- the drawing --------------------------------------------------------------------------

_DRAWN = re.compile(r"^(?P<indent>[ │]*)(?:[├└]── )?(?P<name>[A-Z]\w*)\b")


def drawn_tree(doc: str) -> dict[str, str | None]:
    """``{class: parent}`` from the tree drawn in a docstring's literal block (the
    indented lines after ``::``); a name at the block's left margin is a root."""
    lines = doc.split("::\n", 1)[1].splitlines()
    block: list[str] = []
    for line in lines:
        if line.strip() and not line.startswith(" "):
            break  # the literal block ends at the first line back at the margin
        block.append(line)
    tree: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in textwrap.dedent("\n".join(block)).splitlines():
        if not line.strip():
            continue
        match = _DRAWN.match(line)
        assert match is not None, f"not a line of the tree: {line!r}"
        depth = len(match["indent"]) + (4 if "──" in line else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        tree[match["name"]] = stack[-1][1] if stack else None
        stack.append((depth, match["name"]))
    return tree


def test_the_drawn_tree_is_the_tree_in_errors_py() -> None:
    drawn = drawn_tree(envkit.errors.__doc__ or "")
    actual: dict[str, str | None] = {}
    for name, value in vars(envkit.errors).items():
        if isinstance(value, type) and issubclass(value, BaseException):
            if value.__module__ != "envkit.errors":
                continue
            parent = value.__bases__[0]
            actual[name] = parent.__name__ if parent.__module__ == "envkit.errors" else None
    assert drawn.pop("UserWarning", "absent") is None  # the warnings' root, a builtin
    drawn_roots = {name for name, parent in drawn.items() if parent == "UserWarning"}
    for name in drawn_roots:
        assert issubclass(getattr(envkit.errors, name), UserWarning)
        drawn[name] = None
    assert drawn == actual


def test_image_not_found_is_not_a_reference_error() -> None:
    assert not issubclass(envkit.errors.ImageNotFoundError, envkit.errors.ReferenceError_)
