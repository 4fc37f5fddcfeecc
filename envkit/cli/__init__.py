"""The ``envkit`` command: argparse over the commands plugins contribute.

Every verb is a :class:`envkit.plugins.interfaces.Command` registered through the
``envkit_commands`` hook, envkit's own included. The built-in verbs
(:data:`~envkit.cli.verbs.BUILTIN_VERBS`) take a fast path: a parser of that one command,
without loading pluggy or discovering plugins, because for ``run`` and ``exec`` start-up
time is the container's start-up time. A plugin therefore cannot replace a built-in verb.
For the same reason a command module imports what its verb does inside ``run()`` (as pip's
``commands_dict``): building one verb's parser loads nothing else. A built-in command may
also have ``run_plain(argv)``: it runs a command line in its plain form without argparse
(:mod:`envkit.cli.parsing` holds the parsers), or returns ``None`` to have argparse parse
it; ``envkit build`` does, as its start-up is a good part of a cached build.

``main`` owns exit codes and error rendering: an :class:`~envkit.errors.EnvkitError`
becomes one message on stderr and its
exit code (2 for bad input), never a traceback unless ``ENVKIT_DEBUG=1``. So does an
``OSError`` saying ``ENVKIT_HOME`` (or the temp dir) cannot be written: no permission,
read-only, full (:func:`envkit.settings.storage_error`), wherever it was raised.
"""

from __future__ import annotations

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
    import argparse
    from collections.abc import Sequence

    from envkit.plugins.interfaces import Command


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    from envkit.cli import parsing  # lazy for start-up: argparse only to parse with it

    return parsing.build_parser()


def fast_parser(verb: str) -> argparse.ArgumentParser:
    """The parser of one built-in verb (no plugins loaded)."""
    from envkit.cli import parsing  # lazy for start-up: argparse only to parse with it

    return parsing.fast_parser(verb)


def builtin_command(verb: str) -> Command:
    """The command of a built-in verb, from its module (no plugins loaded)."""
    module = importlib.import_module(BUILTIN_VERBS[verb])
    command: Command = next(c for c in module.COMMANDS if c.name == verb)
    return command


def _run_plain(verb: str, argv: list[str]) -> int | None:
    """Run a built-in verb without argparse when its command can take ``argv`` as it is
    (its ``run_plain``); ``None`` when argparse is to parse the command line."""
    run_plain = getattr(builtin_command(verb), "run_plain", None)
    if run_plain is None:
        return None
    code = run_plain(argv)
    return None if code is None else int(code)


def error(message: str) -> None:
    """Print one error message the way every envkit command does."""
    print(f"envkit: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv == ["--version"]:  # as the full parser answers it, without building it
            from envkit.cli.parsing import version_text  # lazy: argparse only to parse

            print(version_text())
            return 0
        if argv and argv[0] in BUILTIN_VERBS:
            code = _run_plain(argv[0], argv[1:])
            if code is not None:
                return code
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
    except BrokenPipeError as exc:
        if not output_reader_gone():
            # A helper's socket or pipe, not our output: the command did not do its job.
            if debug():
                raise
            error(f"a helper process went away in the middle of the command: {exc}")
            return 1
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


def output_reader_gone() -> bool:
    """Whether stdout is a pipe nobody reads any more (``poll`` says ``POLLERR`` then):
    what a ``BrokenPipeError`` means only when it came from our output."""
    import select  # lazy: only after a broken pipe

    poller = select.poll()
    poller.register(1, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLNVAL) for _, events in poller.poll(0))


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
