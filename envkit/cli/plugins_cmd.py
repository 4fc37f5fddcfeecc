"""(placeholder: filled in by its owner)"""

from __future__ import annotations

from envkit.plugins.interfaces import Command

COMMANDS: list[Command] = []
