"""The built-in CLI commands, registered through the same hook as plugins' commands."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from envkit.cli.verbs import BUILTIN_VERBS
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import Command


@hookimpl
def envkit_commands() -> Sequence[Command]:
    modules = dict.fromkeys(BUILTIN_VERBS.values())
    commands: list[Command] = []
    for module in modules:
        commands.extend(importlib.import_module(module).COMMANDS)
    return commands
