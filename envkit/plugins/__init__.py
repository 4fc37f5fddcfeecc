"""The plugin frame: hook specifications, the markers plugins use, and the manager.

A plugin is a module (or object) with functions marked ``@envkit.plugins.hookimpl``,
published under the entry-point group ``envkit``::

    # pyproject.toml of a plugin package
    [project.entry-points.envkit]
    mybackend = "envkit_mybackend.plugin"

    # envkit_mybackend/plugin.py
    from envkit.plugins import hookimpl

    @hookimpl
    def envkit_volume_backends():
        return [MyBackend()]

envkit's own parts (the local store, the image sources, the CLI commands) register through
the same hooks.
"""

from __future__ import annotations

import pluggy

NAME = "envkit"

#: Marks a function as an implementation of an envkit hook.
hookimpl = pluggy.HookimplMarker(NAME)
#: Marks a function as an envkit hook specification (used by hookspecs.py).
hookspec = pluggy.HookspecMarker(NAME)

__all__ = ["NAME", "hookimpl", "hookspec"]
