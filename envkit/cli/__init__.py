"""The ``envkit`` command: argparse over the commands plugins contribute.

Every verb is a :class:`envkit.plugins.interfaces.Command` registered through the
``envkit_commands`` hook, envkit's own included. ``main`` owns exit codes and error
rendering: an :class:`~envkit.errors.EnvkitError` becomes one message on stderr and its
exit code (2 for bad input), never a traceback unless ``ENVKIT_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from envkit.errors import EnvkitError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    from envkit.plugins.manager import get_manager

    parser = argparse.ArgumentParser(
        prog="envkit",
        description="Images and stacks described in Python, run rootless.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in sorted(get_manager().commands().items()):
        sp = sub.add_parser(name, help=command.help, description=command.help)
        command.configure(sp)
        sp.set_defaults(_command=command)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "envkit " + version("envkit")
    except PackageNotFoundError:
        return "envkit (not installed)"


def error(message: str) -> None:
    """Print one error message the way every envkit command does."""
    print(f"envkit: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    from envkit.settings import debug

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = getattr(args, "_command", None)
        if command is None:
            parser.print_help()
            return 2
        return int(command.run(args))
    except EnvkitError as exc:
        if debug():
            raise
        error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`envkit images | head`): not an error.
        sys.stderr.close()
        return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
