"""Stacks: the services of a :class:`envkit.Stack` kept running, with health checks,
readiness probes, restart policies, volumes, runtime secrets and one network per stack.

:func:`up` / ``stack.up()`` start a stack in a supervisor process and return a
:class:`RunningStack`; :func:`down` removes it from any process. See
docs/reference/stack.md.

The names are imported on first use: ``envkit down`` and ``envkit ps`` need the state
files and the control socket, not the supervisor and the spec objects.
"""

from __future__ import annotations

import importlib
from typing import Any

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.errors import DependencyError
    from envkit.stack.api import RunningService, RunningStack, down, up, up_foreground
    from envkit.stack.state import StackState, all_stacks

_WHERE = {
    "DependencyError": "envkit.errors",
    "RunningService": "envkit.stack.api",
    "RunningStack": "envkit.stack.api",
    "StackState": "envkit.stack.state",
    "all_stacks": "envkit.stack.state",
    "down": "envkit.stack.api",
    "up": "envkit.stack.api",
    "up_foreground": "envkit.stack.api",
}

__all__ = [
    "DependencyError",
    "RunningService",
    "RunningStack",
    "StackState",
    "all_stacks",
    "down",
    "up",
    "up_foreground",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'envkit.stack' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
