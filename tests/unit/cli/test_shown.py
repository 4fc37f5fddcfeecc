"""What the CLI prints of text a container or an image chose: escaped, never raw."""

from __future__ import annotations

import pytest

from envkit.cli import shown

# Go's strconv quotetests (src/strconv/quote_test.go, the Quote column), the table
# docker's `ps` COMMAND column follows; "abc\xffdef" (invalid UTF-8) cannot be a str.
GO_QUOTE = [
    ("\a\b\f\r\n\t\v", r'"\a\b\f\r\n\t\v"'),
    ("\\", r'"\\"'),
    ("\u263a", '"\u263a"'),
    ("\U0010ffff", r'"\U0010ffff"'),
    ("\x04", r'"\x04"'),
    ("!\u00a0!\u2000!\u3000!", r'"!\u00a0!\u2000!\u3000!"'),
    ("\x7f", r'"\x7f"'),
    # and what an image's Cmd could carry
    ('sh -c "x"', r'"sh -c \"x\""'),
    ("sleep \x1b[31mRED\x1b[0m", r'"sleep \x1b[31mRED\x1b[0m"'),
    ("\x1b]0;title\x07", r'"\x1b]0;title\a"'),
]


@pytest.mark.parametrize(("text", "expected"), GO_QUOTE)
def test_quoted_as_go_strconv_quote(text: str, expected: str) -> None:
    assert shown.quoted(text) == expected


def test_printable_shows_control_characters_as_question_marks() -> None:
    assert shown.printable("top \x1b]0;pwned\x07 -x ünï") == "top ?]0;pwned? -x ünï"
    assert shown.printable("plain") == "plain"


def test_table_escapes_every_cell(capsys: pytest.CaptureFixture[str]) -> None:
    shown.table([("NAME", "COMMAND"), ("a", "sleep \x1b[2J"), ("bb", "ok")])
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.splitlines() == ["NAME   COMMAND", "a      sleep ?[2J", "bb     ok"]
