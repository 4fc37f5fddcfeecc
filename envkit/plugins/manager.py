"""Loading plugins and looking up what they contribute.

Built-in parts are plugins like any other: the layer above hands their modules down in
:data:`envkit.wiring.default_plugins` (envkit's own parts from ``envkit/__init__.py``,
the CLI's commands from ``envkit.cli``), registered before the ``envkit`` entry points.
This frame never names them. A third-party plugin that fails to load
(import error, bad hook signature) is reported with its name and cause in
:attr:`PluginManager.failures` and in ``envkit plugins``; the others keep working.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pluggy

from envkit import wiring
from envkit.errors import PluginError
from envkit.plugins import NAME, hookspecs
from envkit.plugins.interfaces import Command, ImageSource, SecretProvider, VolumeBackend
from envkit.records import Value

T = TypeVar("T")


class PluginInfo(Value):
    """One loaded (or failed) plugin, as ``envkit plugins`` lists it."""

    name: str
    origin: str  # "builtin" or "<distribution> <version>"
    module: str
    error: str = ""


class PluginManager:
    """envkit's pluggy manager with typed look-ups of the parts plugins contribute."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        for modname in wiring.default_plugins:
            module = importlib.import_module(modname)
            self.pm.register(module, name=modname)
            self.infos.append(PluginInfo(modname.rsplit(".", 1)[1], "builtin", modname))
        if load_entry_points:
            self._load_entry_points()
        if os.environ.get("ENVKIT_TRACE_PLUGINS", "") not in ("", "0"):
            self._enable_tracing()

    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that could not be loaded."""
        return [info for info in self.infos if info.error]

    def _load_entry_points(self) -> None:
        for ep in _entry_points():
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            try:
                plugin = importlib.import_module(ep.module)
                for attr in filter(None, ep.attr.split(".")):
                    plugin = getattr(plugin, attr)
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not break envkit
                self.infos.append(
                    PluginInfo(ep.name, ep.origin, ep.value, f"{type(exc).__name__}: {exc}")
                )
                continue
            self.infos.append(PluginInfo(ep.name, ep.origin, ep.value))

    def _enable_tracing(self) -> None:
        def write(*args: object) -> None:
            print("envkit-trace:", *args, file=sys.stderr)

        self.pm.trace.root.setwriter(lambda text: write(text.rstrip()))
        self.pm.enable_tracing()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (tests, embedding applications)."""
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name or plugin!r} is invalid: {exc}") from None
        self.infos.append(PluginInfo(name or repr(plugin), "registered", repr(plugin)))

    def _collect(
        self, hook: Callable[[], list[Sequence[T]]], key: Callable[[T], str], what: str
    ) -> dict[str, T]:
        found: dict[str, T] = {}
        # pluggy calls the last registered first; reverse so built-ins come first and a
        # third-party part with a clashing name is the one reported.
        for contributed in reversed(hook()):
            for part in contributed:
                name = key(part)
                if name in found:
                    raise PluginError(
                        f"two plugins provide the {what} {name!r}",
                        hint="uninstall one of them (see `envkit plugins`)",
                    )
                found[name] = part
        return found

    def commands(self) -> dict[str, Command]:
        """CLI commands by name."""
        return self._collect(self.pm.hook.envkit_commands, lambda c: c.name, "command")

    def image_sources(self) -> dict[str, ImageSource]:
        """Image sources by kind."""
        return self._collect(self.pm.hook.envkit_image_sources, lambda s: s.kind, "image source")

    def secret_providers(self) -> dict[str, SecretProvider]:
        """Secret providers by scheme."""
        return self._collect(
            self.pm.hook.envkit_secret_providers, lambda s: s.scheme, "secret provider"
        )

    def volume_backends(self) -> dict[str, VolumeBackend]:
        """Volume backends by name."""
        return self._collect(
            self.pm.hook.envkit_volume_backends, lambda b: b.name, "volume backend"
        )

    def image_source(self, kind: str) -> ImageSource:
        return _lookup(self.image_sources(), kind, "image source")

    def secret_provider(self, scheme: str) -> SecretProvider:
        return _lookup(self.secret_providers(), scheme, "secret provider")

    def volume_backend(self, name: str) -> VolumeBackend:
        return _lookup(self.volume_backends(), name, "volume backend")


def _lookup(parts: dict[str, T], name: str, what: str) -> T:
    try:
        return parts[name]
    except KeyError:
        known = ", ".join(sorted(parts)) or "none"
        raise PluginError(
            f"no {what} named {name!r} (known: {known})",
            hint="install the plugin that provides it; `envkit plugins` lists what is loaded",
        ) from None


class _EntryPoint(Value):
    name: str
    value: str  # "module" or "module:attr"
    origin: str  # "<distribution> <version>"

    @property
    def module(self) -> str:
        return self.value.partition(":")[0].strip()

    @property
    def attr(self) -> str:
        return self.value.partition(":")[2].strip()


def _entry_points() -> list[_EntryPoint]:
    """The ``envkit`` entry points of the installed distributions.

    Reads ``*.dist-info/entry_points.txt`` along ``sys.path`` directly: importing
    importlib.metadata (and the email package it needs) costs more than the rest of a
    command's start-up. The first distribution on ``sys.path`` wins, as in importlib.
    """
    found: list[_EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            stem = name.rsplit(".", 1)[0]
            key = stem.rpartition("-")[0].lower().replace("-", "_")
            if key in seen:
                continue
            seen.add(key)
            base = Path(entry or ".", name)
            try:
                text = (base / "entry_points.txt").read_text()
            except OSError:
                continue
            points = _section(text, NAME)
            if not points:
                continue
            origin = _origin(base, stem)
            found.extend(_EntryPoint(ep_name, value, origin) for ep_name, value in points)
    return found


def _origin(dist_info: Path, stem: str) -> str:
    """``"<Name> <Version>"`` from a distribution's METADATA (its dir name as a fallback)."""
    fields: dict[str, str] = {}
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(dist_info / filename, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        break
                    key, _, value = line.partition(":")
                    if key in ("Name", "Version"):
                        fields.setdefault(key, value.strip())
            break
        except OSError:
            continue
    name, _, version = stem.rpartition("-")
    return f"{fields.get('Name', name)} {fields.get('Version', version)}"


def _section(text: str, section: str) -> list[tuple[str, str]]:
    """``name = value`` lines of one ``[section]`` of an entry_points.txt."""
    items: list[tuple[str, str]] = []
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == section and "=" in line:
            key, _, value = line.partition("=")
            items.append((key.strip(), value.strip()))
    return items


_lock = threading.Lock()
_manager: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = PluginManager()
        return _manager


def reset_manager(manager: PluginManager | None = None) -> None:
    """Replace the process-wide manager (tests)."""
    global _manager
    with _lock:
        _manager = manager
