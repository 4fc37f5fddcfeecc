"""Plugins are loaded only where one beyond envkit's own could listen: what keeps pluggy
out of builds and stack supervisors (envkit/plugins/presence.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from envkit import wiring
from envkit.plugins import notify, presence
from envkit.plugins.manager import PluginManager, reset_manager
from tests.unit.fresh_imports import loaded_after

#: The hooks :mod:`envkit.plugins.notify` calls: no built-in plugin may implement them,
#: or skipping the manager would leave it unheard.
LIFECYCLE_HOOKS = (
    "envkit_build_step_finished",
    "envkit_service_started",
    "envkit_service_stopped",
)


def test_no_builtin_plugin_listens_to_a_lifecycle_event() -> None:
    assert "envkit.builtin.volumes" in wiring.default_plugins, wiring.default_plugins
    for name in wiring.default_plugins:
        module = importlib.import_module(name)
        for hook in LIFECYCLE_HOOKS:
            assert not hasattr(module, hook), (name, hook)


def _dist(path: Path, name: str, entry_points: str | None) -> None:
    info = path / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Name: {name}\nVersion: 1.0\n")
    if entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points)


def test_entry_points_declared_finds_an_envkit_section(tmp_path: Path) -> None:
    _dist(tmp_path, "other", "[console_scripts]\nx = other:main\n")
    _dist(tmp_path, "plain", None)
    assert not presence.entry_points_declared([str(tmp_path), str(tmp_path / "missing")])
    _dist(tmp_path, "envkit_backend", "[envkit]\nbackend = envkit_backend.plugin\n")
    assert presence.entry_points_declared([str(tmp_path)])


def test_a_loaded_plugin_manager_always_hears(monkeypatch: pytest.MonkeyPatch) -> None:
    heard: list[tuple[str, str, int | None]] = []

    class Listener:
        from envkit.plugins import hookimpl

        @hookimpl
        def envkit_service_stopped(self, stack: str, service: str, exit_code: int | None) -> None:
            heard.append((stack, service, exit_code))

    monkeypatch.setattr(presence, "_declared", False)  # as with no plugin installed
    reset_manager(None)
    notify.service_stopped("s", "unheard", 1)
    manager = PluginManager(load_entry_points=False)
    manager.register(Listener(), name="listener")
    reset_manager(manager)
    try:
        notify.service_stopped("s", "web", 3)
    finally:
        reset_manager()
    assert heard == [("s", "web", 3)]


def test_an_installed_plugin_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an ``envkit`` entry point declared, notify loads the manager (and so the
    installed plugins) on its own."""
    monkeypatch.setattr(presence, "_declared", True)
    reset_manager(None)
    try:
        notify.service_started("s", "web")
        import envkit.plugins.manager as manager_module

        assert manager_module._manager is not None
    finally:
        reset_manager()


def test_telling_nobody_loads_no_pluggy(tmp_path: Path) -> None:
    """A stack supervisor's notifications, in an environment without third-party
    plugins (the path is emptied of distributions), load neither pluggy nor logging."""
    code = (
        "import sys\n"
        f"sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + [{str(tmp_path)!r}]\n"
        "from envkit.plugins import notify\n"
        "notify.service_started('s', 'web')\n"
        "notify.service_stopped('s', 'web', 0)\n"
    )
    assert loaded_after(code, tmp_path, ["pluggy", "logging", "envkit.plugins.manager"]) == []
