"""Ignore rules: Docker's documented .dockerignore examples and patternmatcher behaviour."""

from __future__ import annotations

import posixpath
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from envkit.build.ignore import (
    Matcher,
    clean,
    context_matcher,
    parse_ignore,
    read_ignore_file,
)
from envkit.errors import IgnorePatternError

# (ignore file text, path, excluded?) — the first rows are the examples of Docker's
# .dockerignore documentation.
CASES = [
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "temp", False),
    ("*/temp*", "a/b/temp.txt", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("*/*/temp*", "somedir/temporary.txt", False),
    ("temp?", "tempa", True),
    ("temp?", "tempb", True),
    ("temp?", "temp", False),
    ("temp?", "tempab", False),
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c/main.go", True),
    ("**/*.go", "a/b/main.py", False),
    ("*.md\n!README.md", "notes.md", True),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-public.md", False),
    ("*.md\n!README*.md\nREADME-secret.md", "other.md", True),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
    # patternmatcher behaviour
    ("# a comment\n", "# a comment", False),
    ("  build  ", "build/out.o", True),
    ("/abs/path/", "abs/path/x", True),
    ("a/../b", "b/c", True),
    ("./x", "x", True),
    ("dir", "dir/sub/file", True),
    ("dir", "dirx", False),
    ("dir/**", "dir/a/b", True),
    ("**", "anything/at/all", True),
    ("**/node_modules", "node_modules", True),
    ("**/node_modules", "web/node_modules/x/y.js", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/c", False),
    ("f[a-c]o", "fbo", True),
    ("f[a-c]o", "fdo", False),
    ("f[^a-c]o", "fdo", True),
    ("f[!a-c]o", "fao", True),  # '!' is no negation in Go's classes: [!a-c] holds 'a'
    ("f[!a-c]o", "f!o", True),
    ("f[!a-c]o", "fdo", False),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("a.b", "aXb", False),
    ("a+(b)", "a+(b)", True),
    ("*", "x/y", True),
    ("*\n!x\n", "x/y", False),
    ("x\n!x/keep\n", "x/keep", False),
    ("x\n!x/keep\n", "x/drop", True),
]


@pytest.mark.parametrize(("text", "path", "expected"), CASES)
def test_documented_cases(text: str, path: str, expected: bool) -> None:
    matcher = Matcher(parse_ignore(text))
    assert matcher.excluded(path) is expected
    assert matcher.excluded_under(path, None)[0] is expected


def test_parse_trims_cleans_and_keeps_order() -> None:
    text = "\ufeff# c\n\n  /a/b/  \n!  ./c//d\n   # not a comment\n"
    assert parse_ignore(text) == ["a/b", "!c/d", "# not a comment"]


def test_lone_exclamation_and_bad_class_are_errors() -> None:
    with pytest.raises(IgnorePatternError, match="illegal exclusion"):
        Matcher(["!"])
    with pytest.raises(IgnorePatternError, match="not closed"):
        Matcher(["a[bc"])


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("[]a]", "empty"),
        ("[-]", "no start of range"),
        ("[x-]", "empty, or a range has no end"),
        ("[a-b-c]", "no start of range"),
        ("trailing\\", "trailing"),
        ("[z-a]", "does not compile"),
        ("a\\q", "does not compile"),
    ],
)
def test_malformed_patterns_are_refused_naming_file_line_and_pattern(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    (tmp_path / ".dockerignore").write_text(f"# secrets\nok.txt\n{pattern}\n")
    with pytest.raises(IgnorePatternError, match=reason) as info:
        context_matcher(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / '.dockerignore'} line 3" in message
    assert repr(pattern) in message
    assert info.value.exit_code == 2


def test_copy_ignore_patterns_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(IgnorePatternError, match=r"Image.copy\(ignore\): ignore pattern '\[-\]'"):
        context_matcher(tmp_path, ["[-]"])


def test_dockerfile_specific_ignore_file_takes_precedence(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("from-context\n")
    (tmp_path / ".envkitignore").write_text("from-envkitignore\n")
    docker = tmp_path / "docker"
    docker.mkdir()
    dockerfile = docker / "build.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    # No <Dockerfile>.dockerignore: the context's file applies (.envkitignore first).
    assert read_ignore_file(tmp_path, dockerfile) == (
        tmp_path / ".envkitignore",
        ["from-envkitignore"],
    )
    (docker / "build.Dockerfile.dockerignore").write_text("secret.env\n")
    (docker / "Dockerfile.dockerignore").write_text("not-this-one\n")
    path, patterns = read_ignore_file(tmp_path, dockerfile)
    assert (path, patterns) == (docker / "build.Dockerfile.dockerignore", ["secret.env"])
    matcher = context_matcher(tmp_path, (), dockerfile)
    assert matcher.excluded("secret.env")
    assert not matcher.excluded("from-context")  # the context's file is not read at all
    assert not matcher.excluded("from-envkitignore")


def test_envkitignore_wins_over_dockerignore(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("docker-only\n")
    assert read_ignore_file(tmp_path) == (tmp_path / ".dockerignore", ["docker-only"])
    (tmp_path / ".envkitignore").write_text("envkit-only\n")
    matcher = context_matcher(tmp_path)
    assert matcher.excluded("envkit-only")
    assert not matcher.excluded("docker-only")


def test_copy_patterns_come_after_the_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*.log\n")
    matcher = context_matcher(tmp_path, ["!keep.log", "/secret/"])
    assert matcher.excluded("a.log")
    assert not matcher.excluded("keep.log")
    assert matcher.excluded("secret/key")


def test_reinclusion_walks_into_excluded_dirs_only_when_it_could_match() -> None:
    matcher = Matcher(parse_ignore("vendor\n!vendor/keep/*.txt\n"))
    assert matcher.may_reinclude_below("vendor")
    assert matcher.may_reinclude_below("vendor/keep")
    assert not matcher.may_reinclude_below("vendor/other")
    assert not Matcher(["vendor"]).may_reinclude_below("vendor")
    assert Matcher(["vendor", "!**/x"]).may_reinclude_below("vendor/deep")


_segment = st.sampled_from(["a", "b", "temp", "x.go", "README.md", "node_modules", "k"])
_path = st.lists(_segment, min_size=1, max_size=5).map("/".join)
_pattern = st.one_of(
    _path,
    st.sampled_from(["*", "**", "*.go", "**/*.go", "a/**", "temp?", "**/b", "*/temp*", "[ab]"]),
    st.builds(lambda p, q: f"{p}/{q}", _path, st.sampled_from(["*", "**", "?"])),
)
_patterns = st.lists(st.tuples(st.booleans(), _pattern), max_size=6).map(
    lambda items: [("!" if neg else "") + p for neg, p in items]
)


@example(patterns=["a", "b/*", "!*"], path="b/a")
@given(_patterns, _path)
def test_walk_with_parent_flags_agrees_with_matching_from_scratch(
    patterns: list[str], path: str
) -> None:
    matcher = Matcher(parse_ignore("\n".join(patterns)))
    flags = None
    parts = path.split("/")
    for i in range(len(parts)):
        prefix = "/".join(parts[: i + 1])
        excluded, flags = matcher.excluded_under(prefix, flags)
        assert excluded == matcher.excluded(prefix)


@given(_path, _path)
def test_a_literal_pattern_excludes_itself_and_everything_below(pattern: str, rest: str) -> None:
    matcher = Matcher([pattern])
    assert matcher.excluded(pattern)
    assert matcher.excluded(f"{pattern}/{rest}")


@given(st.text(alphabet="ab./", max_size=12))
def test_clean_matches_posix_normpath(path: str) -> None:
    cleaned = clean(path)
    assert clean(cleaned) == cleaned
    if not path.startswith("//"):
        assert cleaned == posixpath.normpath(path or ".")
