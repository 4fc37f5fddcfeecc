"""What the top of the house hands down to the layers below it.

A few lower layers must call code that lives above them: the acting methods of the spec
objects (``Image.build``, ``Stack.up``, ``Stack.from_compose``, ``Stack.export``,
``Secret.reveal``) run the build, stack, compose and plugin layers, and the plugin manager
registers envkit's built-in plugins, which live at the top (``envkit.builtin``). They
never import those layers, not even by name: the top layer (``envkit/__init__.py``, which
Python runs before any other envkit module) stores what they need here, and they read it
from here. See docs/dev/architecture.md, "How spec reaches build and stack".

This module is in the foundation and imports nothing, so it costs no start-up time.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.spec.engine import Engine

#: What the spec objects' acting methods call (:mod:`envkit.spec.engine`); set by
#: ``envkit/__init__.py`` to :class:`envkit.builtin.engine.BuiltinEngine`.
spec_engine: Engine | None = None

#: Modules registered as plugins before the ``envkit`` entry points, in this order, as
#: pytest's ``default_plugins`` (:class:`envkit.plugins.manager.PluginManager`). The top
#: layer adds them: ``envkit/__init__.py`` envkit's built-in parts, ``envkit.cli`` its
#: commands (so the library never loads the command line).
default_plugins: list[str] = []


def add_default_plugins(*modules: str) -> None:
    """Append ``modules`` to :data:`default_plugins` (once each, order kept)."""
    for module in modules:
        if module not in default_plugins:
            default_plugins.append(module)
