"""The plugin frame: built-ins through hooks, entry points, broken plugins, clashes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import envkit.cli  # noqa: F401  (the CLI hands its commands down as a default plugin)
from envkit.errors import PluginError
from envkit.plugins import hookimpl
from envkit.plugins.manager import PluginManager, reset_manager


def make_plugin_dist(root: Path, dist: str, ep_name: str, module: str, source: str) -> None:
    """A minimal installed distribution on ``root``: dist-info with an envkit entry point."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[envkit]\n{ep_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))


GOOD = """
    from envkit.plugins import hookimpl

    class Hello:
        name = "hello"
        help = "say hello"
        def configure(self, parser):
            parser.add_argument("who")
        def run(self, args):
            print("hello", args.who)
            return 0

    class Const:
        scheme = "const"
        def read(self, location):
            return location.encode()

    @hookimpl
    def envkit_commands():
        return [Hello()]

    @hookimpl
    def envkit_secret_providers():
        return [Const()]
"""


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m.startswith("envkit_test_")]:
        del sys.modules[name]
    reset_manager()


def test_builtins_register_through_hooks() -> None:
    manager = PluginManager(load_entry_points=False)
    assert {"doctor", "plugins"} <= set(manager.commands())
    assert {"env", "file"} <= set(manager.secret_providers())
    assert "local" in manager.volume_backends()
    assert all(info.origin == "builtin" for info in manager.infos)


def test_entry_point_plugin_adds_parts(plugin_path: Path) -> None:
    make_plugin_dist(plugin_path, "envkit-hello", "hello", "envkit_test_hello", GOOD)
    manager = PluginManager()
    assert "hello" in manager.commands()
    assert manager.secret_provider("const").read("abc") == b"abc"
    info = next(i for i in manager.infos if i.name == "hello")
    assert info.origin == "envkit-hello 1.0"
    assert not manager.failures


def test_broken_plugin_is_reported_and_others_work(plugin_path: Path) -> None:
    make_plugin_dist(
        plugin_path, "envkit-broken", "broken", "envkit_test_broken", "import no_such_module_x\n"
    )
    bad_sig = """
        from envkit.plugins import hookimpl

        @hookimpl
        def envkit_commands(unknown_argument):
            return []
    """
    make_plugin_dist(plugin_path, "envkit-badsig", "badsig", "envkit_test_badsig", bad_sig)
    manager = PluginManager()
    failures = {f.name: f for f in manager.failures}
    assert set(failures) == {"broken", "badsig"}
    assert "ModuleNotFoundError" in failures["broken"].error
    assert "no_such_module_x" in failures["broken"].error
    assert "unknown_argument" in failures["badsig"].error
    assert "doctor" in manager.commands()


def test_clashing_names_are_an_error() -> None:
    class Dup:
        scheme = "env"

        def read(self, location: str) -> bytes | None:
            return None

    class Plugin:
        @hookimpl
        def envkit_secret_providers(self) -> list[Dup]:
            return [Dup()]

    manager = PluginManager(load_entry_points=False)
    manager.register(Plugin(), name="dup")
    with pytest.raises(PluginError, match="two plugins provide the secret provider 'env'"):
        manager.secret_providers()


def test_unknown_part_names_the_known_ones() -> None:
    manager = PluginManager(load_entry_points=False)
    with pytest.raises(PluginError, match=r"no volume backend named 'nfs' \(known: local, tmpfs\)"):
        manager.volume_backend("nfs")


def test_cli_runs_a_plugin_command_and_lists_plugins(plugin_path: Path) -> None:
    make_plugin_dist(plugin_path, "envkit-hello", "hello", "envkit_test_hello", GOOD)
    make_plugin_dist(
        plugin_path, "envkit-broken", "broken", "envkit_test_broken", "raise RuntimeError('boom')\n"
    )
    env_path = f"{plugin_path}"
    run = subprocess.run(
        [sys.executable, "-m", "envkit", "hello", "world"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello world\n"
    listing = subprocess.run(
        [sys.executable, "-m", "envkit", "plugins"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    assert listing.returncode == 1
    assert "broken" in listing.stdout and "RuntimeError: boom" in listing.stdout
    assert "envkit-hello 1.0" in listing.stdout
    assert "Traceback" not in listing.stderr


def test_trace_plugins_shows_hook_calls(plugin_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "envkit", "plugins"],
        capture_output=True,
        text=True,
        env={"ENVKIT_TRACE_PLUGINS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert "envkit-trace:" in run.stderr
    assert "envkit_commands" in run.stderr
