"""``envkit pull`` and ``push``: plain command lines run without argparse (``run_plain``).

:func:`envkit.cli.plain.read` must read a command line exactly as the verb's argparse
parser does, or decline it (``None``) so that argparse parses it: checked on every
command line of up to three words over a vocabulary of options, values and malformed
forms, as for ``build`` (tests/unit/cli/test_build_plain.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from envkit.cli import builtin_command
from tests.unit.cli.verb_parsers import parsed
from tests.unit.fresh_imports import loaded_after

WORDS = (
    "-q",
    "--quiet",
    "--platform",
    "linux/amd64",
    "--update",
    "busybox:1",
    "localhost:5000/a/b:1",
    "stack.py",
    "",
    "-",
    "--",
    "-h",
    "--help",
    "--quiet=1",
    "-qq",
    "--qu",
    "-x",
)


def _plain(verb: str, argv: list[str]) -> dict[str, object] | None:
    """What ``run_plain`` would run with (its ``run`` is replaced to tell)."""
    command = builtin_command(verb)
    seen: list[dict[str, object]] = []

    def record(args: object) -> int:
        seen.append(dict(vars(args)))
        return 0

    run = command.run
    try:
        command.run = record  # type: ignore[method-assign]
        code = command.run_plain(argv)  # type: ignore[attr-defined]
    finally:
        command.run = run  # type: ignore[method-assign]
    if code is None:
        return None
    return seen[0]


@pytest.mark.parametrize("verb", ["pull", "push"])
def test_every_short_command_line_reads_as_argparse_reads_it(verb: str) -> None:
    taken = 0
    for n in range(4):
        for argv in itertools.product(WORDS, repeat=n):
            plain = _plain(verb, list(argv))
            if plain is not None:
                assert plain == parsed(verb, list(argv)), argv
                taken += 1
    assert taken > 20  # the plain forms are read here, not all left to argparse


@pytest.mark.parametrize(
    ("verb", "argv"),
    [
        ("pull", ["busybox:1"]),
        ("pull", ["-q", "localhost:5000/a/b:1"]),
        ("push", ["-q", "bench:1", "localhost:5000/bench/img:1"]),
        ("push", ["bench:1"]),
    ],
)
def test_the_usual_forms_are_plain(verb: str, argv: list[str]) -> None:
    assert _plain(verb, argv) == parsed(verb, argv)


def test_a_plain_pull_imports_no_argparse(tmp_path: Path) -> None:
    """The point of it: ``envkit pull REF`` (here a reference that is refused before any
    request) loads neither argparse nor the parser module."""
    code = "from envkit.cli import main\nassert main(['pull', '-q', 'UPPER/Case::1']) == 2\n"
    assert loaded_after(code, tmp_path, ["argparse", "envkit.cli.parsing"]) == []
