"""BuildKit's parser test files, parsed by envkit's Dockerfile parser.

tests/data/buildkit_parser/<name>/{Dockerfile,result} and
tests/data/buildkit_parser_negative/<name>/Dockerfile are moby/buildkit's
``frontend/dockerfile/parser/testfiles`` and ``testfiles-negative``; the heredoc and line
tables are transcribed from its ``parser_test.go`` and ``parser_heredoc_test.go`` (see
the README in each folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envkit.build.dockerfile_parser import (
    ParseError,
    chomp_heredoc,
    heredocs_from_line,
    parse,
    parse_heredoc,
    parse_words,
)

DATA = Path(__file__).parents[2] / "data"
POSITIVE = sorted(p.name for p in (DATA / "buildkit_parser").iterdir() if p.is_dir())
NEGATIVE = sorted(p.name for p in (DATA / "buildkit_parser_negative").iterdir() if p.is_dir())
HEREDOC: dict[str, Any] = json.loads(
    (DATA / "buildkit_parser_heredoc" / "cases.json").read_text(encoding="utf-8")
)


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


@pytest.mark.parametrize("name", POSITIVE)
def test_parser_testfiles(name: str) -> None:
    folder = DATA / "buildkit_parser" / name
    result = parse(_read(folder / "Dockerfile"))
    assert result.root.dump() + "\n" == _read(folder / "result")


@pytest.mark.parametrize("name", NEGATIVE)
def test_parser_negative_testfiles(name: str) -> None:
    folder = DATA / "buildkit_parser_negative" / name
    with pytest.raises(ParseError):
        parse(_read(folder / "Dockerfile"))


def test_parse_words() -> None:
    assert len(HEREDOC["parse_words"]) == 8  # the upstream table's cases
    for case in HEREDOC["parse_words"]:
        assert parse_words(case["input"], "\\") == case["expect"]


def test_line_numbers() -> None:
    result = parse(_read(DATA / "buildkit_parser_line" / "Dockerfile"))
    assert (result.root.start_line, result.root.end_line) == (5, 31)
    assert [[c.start_line, c.end_line] for c in result.root.children] == [
        [5, 5],
        [11, 12],
        [17, 31],
    ]


def test_empty_continuation_lines_warn() -> None:
    result = parse(HEREDOC["empty_continuation"]["dockerfile"])
    assert len(result.warnings) == 2
    for warning, expected in zip(
        result.warnings, HEREDOC["empty_continuation"]["contains"], strict=True
    ):
        assert "Empty continuation line found in" in warning.short
        assert expected in warning.short


def test_too_long_line_is_refused() -> None:
    with pytest.raises(ParseError, match="greater than max allowed size of 65535"):
        parse("\n\t\tFROM image\n\t\tLABEL test=" + "a" * 65536 + "\n")


def test_heredocs_extracted() -> None:
    result = parse(HEREDOC["extract"]["dockerfile"])
    assert len(HEREDOC["extract"]["heredocs"]) == len(result.root.children) - 1 == 27
    for index, expected in enumerate(HEREDOC["extract"]["heredocs"]):
        child = result.root.children[index + 1]
        found = [
            {"name": h.name, "content": h.content, "expand": h.expand, "chomp": h.chomp, "fd": h.fd}
            for h in child.heredocs
        ]
        assert found == (expected or []), child.original


def test_json_form_has_no_heredocs() -> None:
    result = parse(HEREDOC["json"]["dockerfile"])
    assert all(not child.heredocs for child in result.root.children[1:4])


def test_heredoc_helpers() -> None:
    helpers = HEREDOC["helpers"]
    assert helpers["not_heredocs"] and helpers["valid"] and helpers["invalid"]
    for src in helpers["not_heredocs"]:
        assert parse_heredoc(src) is None, src
    for src in helpers["valid"]:
        found = parse_heredoc(src)
        assert found is not None and found.name == "EOF", src
    for src in helpers["invalid"]:
        with pytest.raises(ValueError):
            parse_heredoc(src)
    assert chomp_heredoc("\thello\n\tworld\n") == "hello\nworld\n"


def test_heredocs_from_line() -> None:
    # upstream's own check: each heredoc found has the listed name. "RUN <<- EOF" finds
    # none there either ("<<-" and "EOF" are two words), so this is a prefix check.
    for case in HEREDOC["from_line"]:
        names = [h.name for h in heredocs_from_line(case["line"])]
        assert names == case["names"][: len(names)], case["line"]
    assert [h.name for h in heredocs_from_line("RUN << -EOF")] == ["-EOF"]
    assert heredocs_from_line("RUN '<<EOF'") == heredocs_from_line('RUN "<<EOF"') == []
