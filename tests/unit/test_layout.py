"""tests/unit mirrors the package: a test sits where the code it tests sits.

The unit tests of ``envkit/<package>/`` (subpackages too, ``envkit/builtin/debian/``) live
in ``tests/unit/<package>/``, each directory with an ``__init__.py`` so two packages may
both have a ``test_state.py``. The tests of envkit's top-level modules (``pulling.py``,
``settings.py``, ``records.py``, ...) sit at the top, named after the module
(``test_settings.py``, ``test_settings_storage_errors.py``), beside the few tests of the
whole house listed below. docs/dev/architecture.md ("Where tests go") says the same.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Tests about the whole house, at the top of tests/unit, with why.
HOUSE_TESTS = {
    "test_architecture.py": "the layers: every module's imports",
    "test_docs.py": "generated docs and docs that must name every part",
    "test_error_tree.py": "errors a caller can see, defined in any module",
    "test_layout.py": "this test: where every test file sits",
    "test_type_checking_idiom.py": "the TYPE_CHECKING idiom in every module",
}

#: Tests known to sit in the wrong place, with where they belong; may only shrink.
NOT_YET_MOVED: dict[str, str] = {}


def is_test_file(path: Path) -> bool:
    """What pytest collects by default (``python_files``): test_*.py and *_test.py."""
    return path.suffix == ".py" and (path.name.startswith("test_") or path.stem.endswith("_test"))


def misplaced(unit: Path, package: Path, allowed_at_top: set[str]) -> list[str]:
    """Test files under ``unit`` that do not mirror ``package``, each with what is wrong."""
    modules = {p.stem for p in package.glob("*.py") if not p.name.startswith("__")}
    found = []
    for path in sorted(unit.rglob("*.py")):
        if "__pycache__" in path.parts or not is_test_file(path):
            continue
        rel = path.relative_to(unit)
        folder = rel.parent
        if folder == Path("."):
            named_after = any(
                path.stem == f"test_{m}" or path.stem.startswith(f"test_{m}_") for m in modules
            )
            if path.name not in allowed_at_top and not named_after:
                found.append(
                    f"{rel}: at the top of tests/unit, but named after no top-level module "
                    f"of {package.name}/ ({', '.join(sorted(modules))}) and not a house test: "
                    f"move it to tests/unit/<package>/ for the package it tests"
                )
            continue
        if not (package / folder / "__init__.py").is_file():
            found.append(f"{rel}: {package.name}/{folder} is no package of {package.name}")
        for parent in (folder, *folder.parents[:-1]):
            if not (unit / parent / "__init__.py").is_file():
                found.append(f"{rel}: tests/unit/{parent}/ has no __init__.py")
    return found


def test_every_test_file_mirrors_the_package() -> None:
    allowed = set(HOUSE_TESTS) | set(NOT_YET_MOVED)
    assert misplaced(ROOT / "tests" / "unit", ROOT / "envkit", allowed) == []


def test_pytest_collects_every_test_folder(pytestconfig: pytest.Config) -> None:
    """pytest's default ``norecursedirs`` skips any folder named ``build`` (or ``dist``,
    ``venv``): a package of that name would be tested only when named on the command
    line. pyproject.toml lists the patterns without it."""
    patterns: list[str] = pytestconfig.getini("norecursedirs")
    unit = ROOT / "tests" / "unit"
    skipped = [
        f"{folder.relative_to(unit)} (norecursedirs {pattern!r})"
        for folder in sorted(p for p in unit.rglob("*") if p.is_dir())
        if any(is_test_file(f) for f in folder.iterdir())
        for pattern in patterns
        # as pytest matches them: by name, or by path when the pattern has a slash
        if fnmatch(folder.name, pattern)
        or ("/" in pattern and fnmatch(str(folder), f"*/{pattern}"))
    ]
    assert skipped == []


def test_the_lists_name_files_that_exist() -> None:
    top = ROOT / "tests" / "unit"
    assert [name for name in (*HOUSE_TESTS, *NOT_YET_MOVED) if not (top / name).is_file()] == []


def test_misplaced_tests_are_found(tmp_path: Path) -> None:
    package, unit = tmp_path / "pkg", tmp_path / "unit"
    for folder in (package / "store", package / "builtin" / "debian"):
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
    (package / "settings.py").write_text("")
    (package / "__init__.py").write_text("")
    files = {
        "test_settings.py": "fine: named after a top-level module",
        "test_settings_storage.py": "fine: a topic of it",
        "test_house.py": "fine: listed",
        "helpers.py": "fine: not a test",
        "store/test_locks.py": "fine",
        "builtin/debian/test_deb.py": "fine",
        "test_store_locks.py": "stray at the top",
        "settings_test.py": "stray at the top, the other pattern",
        "nowhere/test_x.py": "no such package",
        "builtin/debian/test_resolve.py": "fine, but builtin/ lacks __init__.py below",
    }
    for rel in files:
        (unit / rel).parent.mkdir(parents=True, exist_ok=True)
        (unit / rel).write_text("")
    for name in ("store", "nowhere", "builtin/debian"):
        (unit / name / "__init__.py").write_text("")
    found = misplaced(unit, package, {"test_house.py"})
    assert [line.split(":")[0] for line in found] == [
        "builtin/debian/test_deb.py",
        "builtin/debian/test_resolve.py",
        "nowhere/test_x.py",
        "settings_test.py",
        "test_store_locks.py",
    ]
    assert "builtin/ has no __init__.py" in found[0]
    assert "pkg/nowhere is no package of pkg" in found[2]
    assert "move it to tests/unit/<package>/" in found[4]
