"""The CLI's own commands, registered through the same hook as plugins' commands.

:mod:`envkit.cli` hands this module down as a default plugin
(:func:`envkit.wiring.add_default_plugins`) when it is imported, so the plugin manager
lists these commands only in a process that runs the command line: the library never
loads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from envkit.cli.verbs import BUILTIN_VERBS
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import Command


@hookimpl
def envkit_commands() -> Sequence[Command]:
    """Every built-in verb's :class:`Command`, from the modules :data:`BUILTIN_VERBS` names."""
    modules = dict.fromkeys(BUILTIN_VERBS.values())
    commands: list[Command] = []
    for module in modules:
        commands.extend(importlib.import_module(module).COMMANDS)
    return commands
