"""Containers as users hold them: the handle, the run options, image resolution and the
monitor process that holds detached containers (:mod:`.monitor`).

The public names load on first use (the monitor process imports this package and must
stay small)::

    from envkit.container import get, list_containers
    web = get("web")                       # by name, id or unique id prefix
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

    from envkit.container.handle import Container, ExecResult, get, list_containers
    from envkit.container.options import RunOptions
    from envkit.container.start import run

__all__ = ["Container", "ExecResult", "RunOptions", "get", "list_containers", "run"]

_HOMES = {
    "Container": "handle",
    "ExecResult": "handle",
    "get": "handle",
    "list_containers": "handle",
    "RunOptions": "options",
    "run": "start",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'envkit.container' has no attribute {name!r}")
    from importlib import import_module  # lazy for start-up (see above)

    value = getattr(import_module(f"envkit.container.{module}"), name)
    globals()[name] = value
    return value
