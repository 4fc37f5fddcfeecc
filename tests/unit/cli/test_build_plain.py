"""``envkit build``'s plain command lines, run without argparse (``run_plain``).

:func:`envkit.cli.build.plain_options` must read a command line exactly as the verb's
argparse parser does, or decline it (``None``) so that argparse parses it. Both are run
on every command line of up to three words over a vocabulary of options, values and
malformed forms, and on seeded random longer ones.
"""

from __future__ import annotations

import itertools
import random

import pytest

from envkit.cli import main
from envkit.cli.build import plain_options
from tests.unit.cli.verb_parsers import parsed

WORDS = (
    "-t",
    "--tag",
    "--context",
    "--progress",
    "--stack",
    "--no-cache",
    "app.py:web",
    "stack.py",
    "plain",
    "quiet",
    "bogus",
    "",
    "-",
    "--",
    "-h",
    "--help",
    "--tag=a:1",
    "-ta:1",
    "--no-c",
    "--prog",
    "-1",
    "a b",
)


def _check(argv: list[str]) -> bool:
    plain = plain_options(argv)
    if plain is None:
        return False
    assert vars(plain) == parsed("build", argv), argv
    return True


def test_every_short_command_line_reads_as_argparse_reads_it() -> None:
    taken = 0
    for n in range(4):
        for argv in itertools.product(WORDS, repeat=n):
            taken += _check(list(argv))
    assert taken > 500  # the plain forms are many, not a corner


def test_longer_command_lines_read_as_argparse_reads_them() -> None:
    rng = random.Random(21)
    for _ in range(3000):
        _check(rng.choices(WORDS, k=rng.randint(4, 8)))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["app.py:web", "-t", "web:1", "--progress", "quiet"],
        ["--no-cache", "-t", "web:1", "app.py:web", "--no-cache"],
        ["--context", "ctx", "--stack", "demo", "stack.py", "--progress", "plain"],
        ["-t", "a", "--tag", "b"],
    ],
)
def test_the_usual_forms_are_plain(argv: list[str]) -> None:
    assert _check(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--tag=web:1"],
        ["-tweb:1"],
        ["--no-c"],
        ["a.py", "b.py"],
        ["--progress", "fancy"],
        ["-t"],
        ["-t", "-x"],
        ["--", "a.py"],
    ],
)
def test_other_forms_are_left_to_argparse(argv: list[str]) -> None:
    assert plain_options(argv) is None


def test_a_declined_command_line_still_gets_argparse_s_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["build", "--progress", "fancy"])
    assert exited.value.code == 2
    assert "invalid choice: 'fancy'" in capsys.readouterr().err
