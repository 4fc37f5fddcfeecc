"""envkit's own parts, registered through the same hooks as third-party plugins.

This package is the composition root of the plugins: the volume backends (``local``,
``tmpfs``), the secret providers (``env``, ``file``), the image sources (registry,
archives, ``scratch``, Debian) live here, at the top of the house, and
``envkit/__init__.py`` hands :data:`DEFAULT_PLUGINS` down to the plugin manager
(:data:`envkit.wiring.default_plugins`), as pytest's ``default_plugins``. No lower layer
names this package. The CLI's commands are registered by :mod:`envkit.cli` itself.
"""

from __future__ import annotations

#: envkit's built-in plugin modules, registered in this order before any entry point.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "envkit.builtin.image_sources",
    "envkit.builtin.secrets",
    "envkit.builtin.volumes",
    "envkit.builtin.debian.source",
)
