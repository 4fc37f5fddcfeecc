"""``python -m envkit``."""

from envkit.cli import entry

entry()
