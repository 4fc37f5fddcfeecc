"""Whether a plugin beyond envkit's own could take part, known without loading plugins.

Asking the plugin manager means loading pluggy and every built-in plugin: as long as
the rest of a fully cached ``envkit build``, and ~2.4 MB of a stack supervisor's memory
for its whole life. The built-in plugins listen to no lifecycle event (builds' steps,
services' starts and stops; ``tests/unit/plugins/test_presence.py`` keeps it so), so
:mod:`envkit.plugins.notify` and a build's look-ups consult the manager only when
:func:`plugins_beyond_builtins`: the manager is loaded already (plugins registered
in-process, or another part of the command needed it), or an installed distribution
declares ``envkit`` entry points.
"""

from __future__ import annotations

import os
import sys

#: The entry-point group of envkit plugins (``envkit.plugins.NAME``).
GROUP = "envkit"

_declared: bool | None = None
_SECTION = f"[{GROUP}]".encode()


def plugins_beyond_builtins() -> bool:
    """Whether a plugin other than envkit's own could take part (see the module)."""
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
            data = _read(os.path.join(entry or ".", name, "entry_points.txt"))
            if any(line.strip() == _SECTION for line in data.splitlines()):
                return True
    return False


def _read(path: str) -> bytes:
    """The bytes of ``path`` (``b""`` when it cannot be read): a text file object per
    distribution cost ~35 us, of every build."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return b""
    finally:
        os.close(fd)
    return b"".join(chunks)


def reset() -> None:
    """Forget what :func:`entry_points_declared` found (tests that install plugins)."""
    global _declared
    _declared = None
