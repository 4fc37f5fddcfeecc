"""Plain command lines read without argparse: what ``run_plain`` of a verb uses.

Importing :mod:`argparse` (with :mod:`gettext` and :mod:`locale`) and building a verb's
parser costs a few milliseconds of every command; ``envkit pull REF`` is ~150 ms in
all. A verb whose usual command lines are simple reads them here and leaves every other
form (``--help``, ``--opt=value``, ``--``, bundled short options, errors) to argparse.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


class PlainArgs:
    """The options of a plain command line, as argparse's Namespace holds them
    (``vars()`` of both is the same dict, but for argparse's ``_command``)."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self.__dict__.update(values)

    if TYPE_CHECKING:  # attributes as a Namespace's are to type checkers

        def __getattr__(self, name: str) -> Any: ...


def read(
    argv: Sequence[str],
    flags: Mapping[str, str],
    positionals: Sequence[str],
    required: int,
    defaults: Mapping[str, object],
    valued: Mapping[str, str] | None = None,
) -> PlainArgs | None:
    """``argv`` made of switches (``flags``: word -> attribute, set to ``True``), options
    with a value (``valued``: word -> attribute, the value in the next word and not
    starting with ``-``) and at least ``required``, at most ``len(positionals)`` words
    that do not start with ``-`` (named by ``positionals``, in order, side by side:
    argparse takes a run of them at once, so one after an option after another is its
    error); ``None`` for anything else. ``defaults`` are the other attributes argparse
    would set (a positional's default among them)."""
    values = dict(defaults)
    for name in positionals:
        values.setdefault(name, None)
    valued = valued or {}
    taken = 0
    run_ended = False
    words = iter(argv)
    for word in words:
        if word in flags or word in valued:
            if word in valued:
                value = next(words, None)
                if value is None or value.startswith("-"):
                    return None
                values[valued[word]] = value
            else:
                values[flags[word]] = True
            run_ended = taken > 0
        elif word.startswith("-") or taken == len(positionals) or run_ended:
            return None
        else:
            values[positionals[taken]] = word
            taken += 1
    return PlainArgs(values) if taken >= required else None
