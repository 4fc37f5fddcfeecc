"""Stacks: the services of a :class:`envkit.Stack` kept running, with health checks,
restart policies, volumes, runtime secrets and one network per stack.

:func:`up` / ``stack.up()`` start a stack in a supervisor process and return a
:class:`RunningStack`; :func:`down` removes it from any process. See
docs/reference/stack.md.
"""

from __future__ import annotations

from envkit.stack.api import RunningService, RunningStack, down, up, up_foreground
from envkit.stack.state import StackState, all_stacks
from envkit.stack.supervisor import DependencyError

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
