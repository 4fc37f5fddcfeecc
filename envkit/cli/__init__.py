"""The ``envkit`` command: argparse over the commands plugins contribute.

Every verb is a :class:`envkit.plugins.interfaces.Command` registered through the
``envkit_commands`` hook, envkit's own included. The built-in verbs
(:data:`~envkit.cli.verbs.BUILTIN_VERBS`) take a fast path: a parser of that one command,
without loading pluggy or discovering plugins, because for ``run`` and ``exec`` start-up
time is the container's start-up time. A plugin therefore cannot replace a built-in verb.
For the same reason a command module imports what its verb does inside ``run()`` (as pip's
``commands_dict``): building one verb's parser loads nothing else.

``main`` owns exit codes and error rendering: an :class:`~envkit.errors.EnvkitError`
becomes one message on stderr and its
exit code (2 for bad input), never a traceback unless ``ENVKIT_DEBUG=1``. So does an
``OSError`` saying ``ENVKIT_HOME`` (or the temp dir) cannot be written: no permission,
read-only, full (:func:`envkit.settings.storage_error`), wherever it was raised.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
from contextlib import suppress

from envkit import wiring
from envkit.cli.verbs import BUILTIN_VERBS
from envkit.errors import EnvkitError
from envkit.settings import debug, storage_error

# The CLI's commands are a default plugin of a process that runs the CLI (only).
wiring.add_default_plugins("envkit.cli.commands")

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
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
    module = importlib.import_module(BUILTIN_VERBS[verb])
    command = next(c for c in module.COMMANDS if c.name == verb)
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
        print(_version())
        parser.exit()


def _version() -> str:
    # lazy for start-up: importlib.metadata (and email) only for --version
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
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in BUILTIN_VERBS:
            parser = fast_parser(argv[0])
            argv = argv[1:]
        else:
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
    except OSError as exc:
        # A home (or temp dir) that cannot be written, wherever the write was: one line
        # naming the place and the fix, as for any bad input the user can fix.
        translated = storage_error(exc)
        if translated is None or debug():
            raise
        error(str(translated))
        return translated.exit_code


def entry() -> None:
    """Console-script entry point: run the CLI, exit with its code.

    It leaves with ``os._exit`` once the output is flushed and the atexit functions ran
    (logging's flush, finalizers of temp dirs): the interpreter's own finalization
    (module teardown, last collections) adds ~4 ms to every command, which is a tenth of
    ``envkit run --rm IMAGE true``. Unless a non-daemon thread still runs, which the
    interpreter would wait for.
    """
    code = main()
    threading = sys.modules.get("threading")
    if threading is not None and any(
        thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
        for thread in threading.enumerate()
    ):
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # closed, or the reader went away
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(code)
