"""The CLI's argparse parsers: every command's, or one built-in verb's.

Kept apart from :mod:`envkit.cli` so that a command line a command runs in its plain
form (``envkit build app.py:web -t web``, see ``run_plain`` in :mod:`envkit.cli`) never
imports :mod:`argparse`, which with :mod:`gettext` and :mod:`locale` and the parser it
builds costs ~2.5 ms of every such command's start-up.
"""

from __future__ import annotations

import argparse
import os

from envkit.cli import builtin_command

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    from envkit.plugins.manager import get_manager  # lazy for start-up: pluggy, downward

    parser = argparse.ArgumentParser(
        prog="envkit",
        description="Images and stacks described in Python, run rootless.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in sorted(get_manager().commands().items()):
        sp = sub.add_parser(name, help=command.help, description=command.help)
        command.configure(sp)
        sp.set_defaults(_command=command)
    return parser


def fast_parser(verb: str) -> argparse.ArgumentParser:
    """The parser of one built-in verb (no plugins loaded)."""
    command = builtin_command(verb)
    parser = argparse.ArgumentParser(
        prog=f"envkit {verb}", description=command.help, formatter_class=_Formatter
    )
    command.configure(parser)
    parser.set_defaults(_command=command)
    return parser


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, but sized without :mod:`shutil`: argparse makes one per
    ``add_argument`` and shutil's import (bz2, lzma) would cost every ``envkit run``."""

    def __init__(self, prog: str) -> None:
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit():
            width = int(columns)
        else:
            try:
                width = os.get_terminal_size(1).columns
            except OSError:
                width = 80
        super().__init__(prog, width=width - 2)


class _VersionAction(argparse.Action):
    """``--version``: the package metadata is looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kw: Any) -> None:
        print(version_text())
        parser.exit()


def version_text() -> str:
    """``envkit X.Y.Z``, what ``envkit --version`` prints."""
    # lazy for start-up: importlib.metadata (and email) only for --version
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "envkit " + version("envkit")
    except PackageNotFoundError:
        return "envkit (not installed)"
