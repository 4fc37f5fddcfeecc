"""``.envkitignore`` / ``.dockerignore`` rules, with the semantics of Docker's patternmatcher.

A file holds one pattern per line. Lines starting with ``#`` are comments; whitespace
around a pattern is trimmed; each pattern is cleaned like Go's ``filepath.Clean`` and a
leading ``/`` is dropped (patterns are relative to the context root). ``*`` matches any
run of characters except ``/``, ``?`` one character except ``/``, ``[...]`` a class,
``**`` any number of directories (zero included), ``\\`` escapes the next character. A
pattern that matches a directory matches everything below it. ``!pattern`` re-includes
what an earlier pattern excluded; the last matching line wins.

``.envkitignore`` is read instead of ``.dockerignore`` when both exist. The ``ignore=``
patterns of ``Image.copy`` are appended after the file's lines, so they win over it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envkit.errors import EnvkitError

#: Ignore files, by precedence: the first one that exists is used, the others are not read.
IGNORE_FILES = (".envkitignore", ".dockerignore")

_REGEX_SPECIAL = frozenset(".+()|{}$^")


class IgnorePatternError(EnvkitError):
    """An ignore pattern is malformed (an unterminated ``[``, a lone ``!``)."""


def clean(path: str) -> str:
    """``path`` cleaned as Go's ``filepath.Clean`` does (``a//b/../c/`` -> ``a/c``)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    text = "/".join(parts)
    if rooted:
        return "/" + text
    return text or "."


def normalize_line(line: str) -> str | None:
    """One ignore-file line as the pattern Docker keeps, or ``None`` for a blank/comment."""
    if line.startswith("#"):
        return None
    pattern = line.strip()
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = pattern[1:].strip()
    if pattern:
        pattern = clean(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def parse_ignore(text: str) -> list[str]:
    """The patterns of an ignore file's text, in order (a UTF-8 BOM is dropped)."""
    found = []
    for line in text.removeprefix("\ufeff").splitlines():
        pattern = normalize_line(line)
        if pattern is not None:
            found.append(pattern)
    return found


def read_ignore_file(context: Path) -> tuple[Path | None, list[str]]:
    """The ignore file of ``context`` (``.envkitignore`` first) and its patterns."""
    for name in IGNORE_FILES:
        path = context / name
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            raise IgnorePatternError(
                f"{path}: is a directory, not an ignore file", hint=f"remove or rename {path}"
            ) from None
        return path, parse_ignore(text)
    return None, []


def _translate(pattern: str) -> str:
    """The regular expression Docker's patternmatcher compiles ``pattern`` into."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                # "**" at the end matches everything (as .gitignore); elsewhere any dirs.
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(r"\\")
        elif ch == "[":
            end, body = _char_class(pattern, i)
            out.append(body)
            i = end
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(re.escape(ch))
    out.append("$")
    return "".join(out)


def _char_class(pattern: str, start: int) -> tuple[int, str]:
    """A ``[...]`` class starting after ``[`` at ``start``: (index after ``]``, regex)."""
    i, n = start, len(pattern)
    parts = ["["]
    if i < n and pattern[i] in "^!":
        parts.append("^")
        i += 1
    first = True
    while i < n and (pattern[i] != "]" or first):
        ch = pattern[i]
        first = False
        if ch == "\\" and i + 1 < n:
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(ch if ch == "-" else re.escape(ch))
        i += 1
    if i >= n:
        raise IgnorePatternError(
            f"ignore pattern {pattern!r}: unterminated character class '['",
            hint="close the class with ']' or escape the bracket as '\\['",
        )
    parts.append("]")
    return i + 1, "".join(parts)


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern: ``text`` without its ``!``, and whether it re-includes."""

    text: str
    exclusion: bool
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def compile(cls, raw: str) -> Pattern:
        """Compile one pattern line (already normalised, ``!`` included)."""
        exclusion = raw.startswith("!")
        text = raw[1:] if exclusion else raw
        if exclusion and not text:
            raise IgnorePatternError(
                'illegal exclusion pattern: "!"', hint="write the path to re-include after '!'"
            )
        text = clean(text)
        try:
            regex = re.compile(_translate(text), re.DOTALL)
        except re.error as exc:
            raise IgnorePatternError(
                f"ignore pattern {raw!r} is malformed: {exc}", hint="check its [...] classes"
            ) from None
        return cls(text, exclusion, regex)

    def match(self, path: str) -> bool:
        """Whether the cleaned relative ``path`` matches this pattern."""
        return self.regex.match(path) is not None

    def could_match_below(self, directory: str) -> bool:
        """Whether this pattern might match some path strictly below ``directory``."""
        pat_parts = self.text.split("/")
        dir_parts = directory.split("/")
        for i, part in enumerate(dir_parts):
            if i >= len(pat_parts):
                return False
            if "**" in pat_parts[i]:
                return True
            if not Pattern.compile(pat_parts[i]).match(part):
                return False
        return len(pat_parts) > len(dir_parts)


#: Per-pattern "matched" flags of a directory, handed down to its children.
ParentMatches = tuple[bool, ...]


class Matcher:
    """An ordered list of patterns deciding which context paths are excluded.

    ``patterns`` are already normalised (as :func:`parse_ignore` returns them).
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[Pattern, ...] = tuple(Pattern.compile(p) for p in patterns)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) or one of its parents is excluded.

        Docker's ``MatchesOrParentMatches``: a pattern matching a parent directory
        matches the path.
        """
        path = clean(path)
        parent = posixpath.dirname(path)
        parent_dirs = parent.split("/") if parent else []
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path) or any(
                pattern.match("/".join(parent_dirs[: i + 1])) for i in range(len(parent_dirs))
            )
            if hit:
                matched = not pattern.exclusion
        return matched

    def excluded_under(self, path: str, parent: ParentMatches | None) -> tuple[bool, ParentMatches]:
        """Like :meth:`excluded`, reusing the flags computed for the parent directory.

        Docker's ``MatchesUsingParentResults``: a walk passes each directory's flags to
        its children so that no path re-checks its ancestors.
        """
        if parent is None:
            parent = tuple(self._ancestor_flags(path))
        flags: list[bool] = []
        matched = False
        for i, pattern in enumerate(self.patterns):
            # Record every pattern's hit, even one that cannot change this path's verdict:
            # a child inherits it (Docker's walk skips those and so disagrees with
            # MatchesOrParentMatches for ["b/*", "!*"] on b/a).
            hit = parent[i] or pattern.match(path)
            flags.append(hit)
            if hit and pattern.exclusion == matched:
                matched = not pattern.exclusion
        return matched, tuple(flags)

    def _ancestor_flags(self, path: str) -> list[bool]:
        parent = posixpath.dirname(clean(path))
        if not parent:
            return [False] * len(self.patterns)
        dirs = parent.split("/")
        return [
            any(p.match("/".join(dirs[: i + 1])) for i in range(len(dirs))) for p in self.patterns
        ]

    def may_reinclude_below(self, directory: str) -> bool:
        """Whether an excluded ``directory`` must still be walked: some ``!`` pattern
        could re-include a path inside it."""
        return self.has_exclusions and any(
            p.exclusion and p.could_match_below(directory) for p in self.patterns
        )


def context_matcher(context: Path, extra: Sequence[str] = ()) -> Matcher:
    """The rules of ``context``'s ignore file followed by ``extra`` patterns."""
    _, patterns = read_ignore_file(context)
    added = (normalize_line(p) for p in extra)
    return Matcher([*patterns, *(p for p in added if p)])
