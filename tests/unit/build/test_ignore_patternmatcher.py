"""moby/patternmatcher's own test tables, carried as data, against envkit's ignore rules.

The data file names its source. ``excluded`` is patternmatcher's
``MatchesOrParentMatches``; ``excluded_under`` its walk (``MatchesUsingParentResults``),
fed the results of each parent directory in turn, and also fed nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envkit.build.ignore import (
    Matcher,
    ParentMatches,
    Pattern,
    docker_regexp,
    parse_ignore,
)
from envkit.errors import IgnorePatternError

DATA = json.loads(
    (Path(__file__).parents[2] / "data" / "patternmatcher" / "patternmatcher_test.json").read_text()
)
_KINDS = {
    "exactMatch": "exact",
    "prefixMatch": "prefix",
    "suffixMatch": "suffix",
    "regexpMatch": "regexp",
}


def _walk(matcher: Matcher, path: str) -> bool:
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    flags: ParentMatches | None = tuple(False for _ in matcher.patterns)
    if parent:
        parts = parent.split("/")
        for i in range(len(parts)):
            _, flags = matcher.excluded_under("/".join(parts[: i + 1]), flags)
    return matcher.excluded_under(path, flags)[0]


def _row_id(row: dict[str, Any]) -> str:
    return f"{row.get('pattern', row.get('patterns'))!s}~{row['path']}"


def test_source_is_named() -> None:
    assert "moby/patternmatcher" in DATA["source"] and "commit" in DATA["source"]


@pytest.mark.parametrize("row", DATA["matches"], ids=_row_id)
def test_matches(row: dict[str, Any]) -> None:
    matcher = Matcher([row["pattern"]])
    assert matcher.excluded(row["path"]) is row["match"]
    assert _walk(matcher, row["path"]) is row["match"]
    assert matcher.excluded_under(row["path"], None)[0] is row["match"]


@pytest.mark.parametrize("row", DATA["multi_pattern_matches"], ids=_row_id)
def test_multi_pattern_matches(row: dict[str, Any]) -> None:
    matcher = Matcher(row["patterns"])
    assert matcher.excluded(row["path"]) is row["match"]
    assert _walk(matcher, row["path"]) is row["match"]
    assert matcher.excluded_under(row["path"], None)[0] is row["match"]


@pytest.mark.parametrize("row", DATA["filepath_match"], ids=_row_id)
def test_filepath_match_table(row: dict[str, Any]) -> None:
    """TestMatch: Go's filepath.Match table run through patternmatcher's Matches."""
    if row["error"]:
        with pytest.raises(IgnorePatternError, match="is malformed"):
            Matcher([row["pattern"]])
        return
    assert Matcher([row["pattern"]]).excluded(row["path"]) is row["match"]


@pytest.mark.parametrize("row", DATA["compile"], ids=lambda r: r["pattern"])
def test_compile_table(row: dict[str, Any]) -> None:
    kind, regexp = docker_regexp(Pattern.compile(row["pattern"]).text)
    assert kind == _KINDS[row["match_type"]]
    if kind == "regexp":
        assert regexp == row["regexp"]


@pytest.mark.parametrize("row", DATA["functions"], ids=lambda r: r["test"])
def test_small_tests(row: dict[str, Any]) -> None:
    if row.get("error"):
        with pytest.raises(IgnorePatternError):
            Matcher(row["patterns"])
        return
    assert Matcher(row["patterns"]).excluded(row["path"]) is row["match"]


@pytest.mark.parametrize("row", DATA["new_patterns"], ids=lambda r: r["test"])
def test_new_trims_skips_blanks_and_flags_exclusions(row: dict[str, Any]) -> None:
    matcher = Matcher(row["patterns"])
    assert len(matcher.patterns) == row["count"]
    assert matcher.has_exclusions is row["exclusions"]


def test_ignorefile_read_all() -> None:
    table = DATA["ignorefile_read_all"]
    assert parse_ignore(table["content"]) == table["expected"]
