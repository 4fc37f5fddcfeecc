"""``envkit.plugins.override``: type checkers see ``typing_extensions.override`` (a
planted misspelt override and a planted unmarked one are reported by mypy), at run time
it marks methods as ``typing_extensions.override`` does, without importing
``typing_extensions``; every method the built-in plugins, :class:`DirectoryBackend` and
the first-party plugin override is marked."""

from __future__ import annotations

import importlib
import inspect
import textwrap
from pathlib import Path

import pytest

from envkit.plugins import override
from tests.unit.fresh_imports import loaded_after

ROOT = Path(__file__).resolve().parents[3]

#: Modules whose classes implement an interface or extend a base class.
MODULES = (
    "envkit.builtin.secrets",
    "envkit.builtin.volumes",
    "envkit.builtin.image_sources",
    "envkit.builtin.debian.source",
    "envkit.builtin.debian.packages",
    "envkit.builtin.debian.deb",
    "envkit.plugins.directory_backend",
    "envkit_oci_volumes.backend",
)


def test_it_marks_the_method_and_returns_it() -> None:
    def method() -> None:
        pass

    assert override(method) is method
    assert getattr(method, "__override__", False) is True
    assert override(len) is len  # a builtin refuses the attribute: left as it is


def test_the_plugin_modules_do_not_import_typing_extensions(tmp_path: Path) -> None:
    """``envkit --help`` loads them with the plugin manager (~2 ms for typing_extensions)."""
    code = "\n".join(f"import {m}" for m in MODULES[:-1])
    assert loaded_after(code, tmp_path, ["typing_extensions"]) == []


def test_every_overriding_method_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run-time form of mypy's ``explicit-override`` over these modules (the code is
    not enabled tree-wide: see docs/dev/architecture.md)."""
    monkeypatch.syspath_prepend(str(ROOT / "plugins/envkit-oci-volumes"))
    unmarked, checked = [], 0
    for name in MODULES:
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != name:
                continue
            for attr, value in vars(cls).items():
                function = value.fget if isinstance(value, property) else value
                if not inspect.isfunction(function) or attr == "__init__":
                    continue
                if function.__code__.co_filename != module.__file__:
                    continue  # made by typing.Protocol or dataclass, not written here
                if any(attr in vars(base) for base in cls.__mro__[1:]):
                    checked += 1
                    if not getattr(function, "__override__", False):
                        unmarked.append(f"{name}.{cls.__name__}.{attr}")
    assert unmarked == []
    assert checked > 35


def test_mypy_reads_it_as_typing_extensions_override(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    planted = tmp_path / "planted.py"
    planted.write_text(
        textwrap.dedent(
            """
            from collections.abc import Mapping

            from envkit.plugins import DirectoryBackend, override


            class Mine(DirectoryBackend):
                @override
                def creat(self, volume: str) -> None: ...

                def validate(self, options: Mapping[str, str]) -> None: ...
            """
        )
    )
    flags = ["--strict", "--enable-error-code", "explicit-override", "--no-error-summary"]
    out, _, _ = api.run([*flags, str(planted)])
    assert 'Method "creat" is marked as an override, but no base method was found' in out
    assert 'Method "validate" is not using @override but is overriding a method' in out
    assert out.count("error:") == 2
