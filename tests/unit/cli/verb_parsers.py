"""What a built-in verb's argparse parser makes of a command line: the reference the
plain readers (``run_plain``) are compared with."""

from __future__ import annotations

import contextlib
import io

from envkit.cli import fast_parser


def parsed(verb: str, argv: list[str]) -> dict[str, object] | None:
    """``vars()`` of what ``verb``'s parser makes of ``argv``, without its ``_command``
    (``None``: it exits, on error or help)."""
    parser = fast_parser(verb)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
            found = vars(parser.parse_args(argv))
    except SystemExit:
        return None
    found.pop("_command")
    return found
