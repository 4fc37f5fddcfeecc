"""BuildKit's shell-lexer tables, run against envkit's :class:`ShellLex`.

The data in tests/data/buildkit_shell/ comes from moby/buildkit
``frontend/dockerfile/shell/`` (``envVarTest``, ``wordsTest`` verbatim; the tables of
``lex_test.go`` transcribed into ``lex_cases.json``); see that folder's README.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envkit.build.dockerfile_lex import ShellLex, reverse_pattern, shell_pattern_regex

DATA = Path(__file__).parents[2] / "data" / "buildkit_shell"
CASES: dict[str, Any] = json.loads((DATA / "lex_cases.json").read_text(encoding="utf-8"))


def _env_var_lines() -> list[tuple[int, str, str]]:
    """(line, source, expected) of envVarTest's Unix and all-platform rows."""
    rows = []
    text = (DATA / "envVarTest").read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (part.strip() for part in line.strip().split("|"))
        if platform in ("A", "U"):
            rows.append((number, source, expected))
    return rows


ENV_VAR_ROWS = _env_var_lines()
ENVS = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


@pytest.mark.parametrize(("number", "source", "expected"), ENV_VAR_ROWS)
def test_env_var_table(number: int, source: str, expected: str) -> None:
    lex = ShellLex("\\")
    if expected == "error":
        with pytest.raises(ValueError):
            lex.process_word(source, ENVS)
    else:
        assert lex.process_word(source, ENVS).result == expected, f"envVarTest:{number}"


def _words_rows() -> list[tuple[int, str, list[str], dict[str, str]]]:
    rows = []
    env: dict[str, str] = {}
    text = (DATA / "wordsTest").read_text(encoding="utf-8")
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("#") or (not line and number > 1):
            continue
        if line.startswith("ENV "):
            name, _, value = line[3:].lstrip(" ").partition("=")
            env = {**env, name: value}
            continue
        test, expected = line.split("|")
        rows.append((number, test.strip(), expected.lstrip(" ").split(","), env))
    return rows


@pytest.mark.parametrize(("number", "test", "expected", "env"), _words_rows())
def test_words_table(number: int, test: str, expected: list[str], env: dict[str, str]) -> None:
    try:
        result = ShellLex("\\").process_words(test, env)
    except ValueError:
        result = ["error"]
    assert result == expected, f"wordsTest:{number}"


@pytest.mark.parametrize(
    "case", CASES["process_with_matches"], ids=[c["input"] for c in CASES["process_with_matches"]]
)
def test_process_with_matches(case: dict[str, Any]) -> None:
    lex = ShellLex("\\")
    if case["error"]:
        with pytest.raises(ValueError):
            lex.process_word(case["input"], case["env"])
        return
    found = lex.process_word(case["input"], case["env"])
    assert found.result == case["expected"]
    assert found.matched == set(case["matches"])
    assert found.unmatched == set(case["unmatched"])


@pytest.mark.parametrize("case", CASES["process_with_matches_platform"])
def test_process_with_matches_platform(case: dict[str, Any]) -> None:
    assert ShellLex("\\").process_word(case["input"], case["env"]).result == case["expected"]


@pytest.mark.parametrize("case", CASES["mandatory_env_vars"])
def test_mandatory_env_vars(case: dict[str, Any]) -> None:
    lex = ShellLex("\\")
    if case["error_contains"] is not None:
        with pytest.raises(ValueError, match=case["error_contains"]):
            lex.process_word(case["input"], case["env"])
    else:
        assert lex.process_word(case["input"], case["env"]).result == case["expected"]


def test_shell_pattern_to_regex() -> None:
    table = CASES["convert_shell_pattern_to_regex"]
    assert (len(table["valid"]), len(table["invalid"])) == (4, 3)  # the upstream table's cases
    for pattern, expected in table["valid"].items():
        assert shell_pattern_regex(pattern, greedy=True, anchored=True).pattern == expected
    for pattern in table["invalid"]:
        with pytest.raises(ValueError):
            shell_pattern_regex(pattern, greedy=True, anchored=True)


def test_reverse_pattern() -> None:
    assert len(CASES["reverse_pattern"]) == 5  # the upstream table's cases
    for pattern, expected in CASES["reverse_pattern"].items():
        assert reverse_pattern(pattern) == expected


def test_positional_and_special_parameters_are_empty() -> None:
    lex = ShellLex("\\")
    assert [lex.process_word(w, {}).result for w in ("$1", "${1}", "${@:-x}", "$$")] == [
        "",
        "",
        "x",
        "",
    ]
