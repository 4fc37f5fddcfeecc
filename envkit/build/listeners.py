"""Build notifications to plugins, without loading plugins nobody installed.

``envkit_build_step_finished`` goes to every plugin implementing it
(:mod:`envkit.plugins.notify`). Finding that out means loading pluggy and every
built-in plugin, about as long as the rest of a fully cached ``envkit build``; none of
the built-in plugins listens (``tests/unit/test_build_cache_fast.py`` keeps it so).
So the plugin manager is consulted only when a listener is possible at all: it is
loaded already (plugins registered in-process, or another part of the command needed
it), or an installed distribution declares ``envkit`` entry points.
"""

from __future__ import annotations

import os
import sys

#: The entry-point group of envkit plugins (``envkit.plugins.NAME``).
GROUP = "envkit"

_declared: bool | None = None


def step_finished(step: str, key: str, *, cached: bool, seconds: float) -> None:
    """Tell plugins that build step ``step`` (cache key ``key``) finished."""
    if not listeners_possible():
        return
    from envkit.plugins import notify

    notify.build_step_finished(step, key, cached, seconds)


def listeners_possible() -> bool:
    """Whether a plugin could hear a build notification (see the module)."""
    manager = sys.modules.get("envkit.plugins.manager")
    if manager is not None and getattr(manager, "_manager", None) is not None:
        return True
    global _declared
    if _declared is None:
        _declared = entry_points_declared()
    return _declared


def entry_points_declared(path: list[str] | None = None) -> bool:
    """Whether a distribution along ``path`` (``sys.path``) has an ``entry_points.txt``
    with an ``[envkit]`` section: a superset of the plugins the manager would load
    (it also skips shadowed distributions), read without importlib.metadata."""
    for entry in sys.path if path is None else path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(entry or ".", name, "entry_points.txt")) as f:
                    text = f.read()
            except OSError:
                continue
            if any(line.strip() == f"[{GROUP}]" for line in text.splitlines()):
                return True
    return False


def reset() -> None:
    """Forget what :func:`entry_points_declared` found (tests that install plugins)."""
    global _declared
    _declared = None
