"""``.envkitignore`` / ``.dockerignore`` rules, read and matched as Docker does.

The file format is moby/patternmatcher's ``ignorefile.ReadAll``: one pattern per line;
lines starting with ``#`` are comments; whitespace around a pattern is trimmed; each
pattern is cleaned like Go's ``filepath.Clean`` and a leading ``/`` is dropped (patterns
are relative to the context root).

Matching is patternmatcher's: ``*`` matches any run of characters except ``/``, ``?`` one
character except ``/``, ``[...]`` a class (``[^...]`` negates; ``!`` does not), ``**`` any
number of directories (zero included), ``\\`` escapes the next character. A pattern
that matches a directory matches everything below it. ``!pattern`` re-includes what an
earlier pattern excluded; the last matching line wins. A pattern is compiled the way
patternmatcher compiles it (exact, prefix, suffix or regular-expression match), so its
corner cases agree too (``**file`` is a suffix match: it matches ``dir/myfile``).

Malformed patterns are refused when the file is read, naming the file, the line and
the pattern: what Go's ``filepath.Match`` refuses (``[]a]``, ``[-]``, ``[x-]``,
``[a-b-c]``, an unclosed ``[``, a trailing ``\\``) and what the regular expression
Docker builds from a pattern cannot compile (``[z-a]``, an escape such as ``\\q``). Docker
reports the second kind only when the build runs; envkit reports both up front.

Which file is read: for a Dockerfile build, ``<Dockerfile name>.dockerignore`` beside
the Dockerfile when it exists (BuildKit's per-Dockerfile ignore file); otherwise the
context's ``.envkitignore``, else its ``.dockerignore``. Only one file is read. The
``ignore=`` patterns of ``Image.copy`` are appended after the file's lines, so they win.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from envkit.errors import IgnorePatternError
from envkit.records import Value, field

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Literal

    MatchType = Literal["exact", "prefix", "suffix", "regexp"]

#: Ignore files, by precedence: the first one that exists is used, the others are not read.
IGNORE_FILES = (".envkitignore", ".dockerignore")


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


def read_ignore_file(
    context: Path, dockerfile: Path | None = None
) -> tuple[Path | None, list[str]]:
    """The ignore file that applies and its patterns.

    ``<dockerfile>.dockerignore`` (beside the Dockerfile) when ``dockerfile`` is given and
    that file exists, else ``context``'s ``.envkitignore``, else its ``.dockerignore``.
    """
    path, text = _ignore_file_text(context, dockerfile)
    return path, parse_ignore(text)


def _ignore_file_text(context: Path, dockerfile: Path | None) -> tuple[Path | None, str]:
    candidates = [context / name for name in IGNORE_FILES]
    if dockerfile is not None:
        candidates.insert(0, dockerfile_ignore_file(dockerfile))
    for path in candidates:
        try:
            return path, path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            raise IgnorePatternError(
                f"{path}: is a directory, not an ignore file", hint=f"remove or rename {path}"
            ) from None
    return None, ""


def dockerfile_ignore_file(dockerfile: Path) -> Path:
    """BuildKit's per-Dockerfile ignore file: ``<Dockerfile path>.dockerignore``."""
    return dockerfile.with_name(dockerfile.name + ".dockerignore")


def ignore_file_lines(text: str) -> list[tuple[int, str]]:
    """The patterns of an ignore file's text with their 1-based line numbers."""
    found = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        pattern = normalize_line(line)
        if pattern is not None:
            found.append((number, pattern))
    return found


# -- Go's filepath.Match syntax check ----------------------------------------------------


def syntax_error(pattern: str) -> str | None:
    """Why Go's ``filepath.Match`` refuses ``pattern`` (``ErrBadPattern``), or ``None``.

    Docker's patternmatcher calls ``filepath.Match(pattern, ".")`` for this check; the
    whole pattern is checked whatever the name, so this walks the pattern chunk by chunk
    with Go's rules.
    """
    rest = pattern
    while rest:
        chunk, rest = _scan_chunk(rest)
        error = _chunk_error(chunk)
        if error is not None:
            return error
    return None


def _scan_chunk(pattern: str) -> tuple[str, str]:
    """Go's ``scanChunk``: leading stars dropped, then up to the next ``*`` outside ``[]``."""
    pattern = pattern.lstrip("*")
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return pattern[:i], pattern[i:]


def _chunk_error(chunk: str) -> str | None:
    i, n = 0, len(chunk)
    while i < n:
        ch = chunk[i]
        if ch == "[":
            i += 1
            if i < n and chunk[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and chunk[i] == "]" and ranges > 0:
                    i += 1
                    break
                i, error = _class_char(chunk, i)
                if error:
                    return error
                if chunk[i] == "-":
                    i, error = _class_char(chunk, i + 1)
                    if error:
                        return error
                ranges += 1
        elif ch == "\\":
            if i + 1 >= n:
                return "a trailing '\\' escapes nothing"
            i += 2
        else:
            i += 1
    return None


def _class_char(chunk: str, i: int) -> tuple[int, str]:
    """Go's ``getEsc``: one (possibly escaped) character of a class at ``i``."""
    n = len(chunk)
    if i >= n:
        return i, "a character class '[' is not closed with ']'"
    if chunk[i] == "-":
        return i, "a '-' in a character class has no start of range before it"
    if chunk[i] == "]":
        return i, "a character class is empty, or a range has no end"
    if chunk[i] == "\\":
        i += 1
        if i >= n:
            return i, "a character class '[' is not closed with ']'"
    i += 1
    if i >= n:
        return i, "a character class '[' is not closed with ']'"
    return i, ""


# -- patternmatcher's compile ---------------------------------------------------------

#: Characters patternmatcher escapes in its regular expression (``shouldEscape``).
_GO_ESCAPED = frozenset(".+()|{}$")


def docker_regexp(pattern: str) -> tuple[MatchType, str]:
    """How patternmatcher compiles a cleaned ``pattern``: its match type and, for a
    ``"regexp"`` match, the Go regular expression it builds (``""`` otherwise)."""
    out = "^"
    kind: MatchType = "exact"
    i, n = 0, len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:  # "**" at the end: everything, as .gitignore
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out += ".*"
                        kind = "regexp"
                else:
                    out += "(.*/)?"
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out += "[^/]*"
                kind = "regexp"
        elif ch == "?":
            out += "[^/]"
            kind = "regexp"
        elif ch in _GO_ESCAPED:
            out += "\\" + ch
        elif ch == "\\":
            if i < n:
                out += "\\" + pattern[i]
                i += 1
                kind = "regexp"
            else:
                out += "\\"
        elif ch in "[]":
            out += ch
            kind = "regexp"
        else:
            out += ch
        first = False
    if kind != "regexp":
        return kind, ""
    return kind, out + "$"


#: Go's POSIX classes (``[[:alpha:]]``), as Python class members.
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
#: Go's escapes of a letter, outside and inside a class (Go's classes are ASCII).
_GO_LETTER_ESCAPES = {
    "a": "\\a",
    "f": "\\f",
    "t": "\\t",
    "n": "\\n",
    "r": "\\r",
    "v": "\\v",
    "d": "[0-9]",
    "D": "[^0-9]",
    "s": "[\\t\\n\\f\\r ]",
    "S": "[^\\t\\n\\f\\r ]",
    "w": "[0-9A-Za-z_]",
    "W": "[^0-9A-Za-z_]",
    "b": "(?a:\\b)",
    "B": "(?a:\\B)",
    "A": "\\A",
    "z": "\\Z",
}
_GO_CLASS_ESCAPES = {
    "a": "\\a",
    "f": "\\f",
    "t": "\\t",
    "n": "\\n",
    "r": "\\r",
    "v": "\\v",
    "d": "0-9",
    "s": "\\t\\n\\f\\r ",
    "w": "0-9A-Za-z_",
}


def python_regexp(go: str) -> str:
    """A Go regular expression of the shape :func:`docker_regexp` builds, in Python's
    syntax: same matches (Go's ``$`` is the end of the text, its ``\\d`` ASCII, its
    classes hold a literal ``[``). Raises :class:`ValueError` for what Go refuses or
    Python cannot say the same way."""
    out: list[str] = []
    i, n = 0, len(go)
    in_class = False
    class_start = False
    while i < n:
        ch = go[i]
        if ch == "\\":
            if i + 1 >= n:
                raise ValueError("trailing backslash")
            out.append(_go_escape(go[i + 1], in_class))
            i += 2
            class_start = False
            continue
        if not in_class:
            if ch == "[":
                in_class, class_start = True, True
                out.append("[")
                if i + 1 < n and go[i + 1] == "^":
                    out.append("^")
                    i += 1
            elif ch == "$" and i == n - 1:
                out.append("\\Z")
            else:
                out.append(ch)
            i += 1
            continue
        if ch == "]" and not class_start:
            in_class = False
            out.append("]")
        elif ch == "[" and go.startswith("[:", i):
            end = go.find(":]", i + 2)
            name = go[i + 2 : end] if end > 0 else ""
            if name not in _POSIX_CLASSES:
                raise ValueError(f"invalid character class range [:{name}:]")
            out.append(_POSIX_CLASSES[name])
            i = end + 1
        elif ch in "[&~|":
            out.append("\\" + ch)
        else:
            out.append(ch)
        class_start = False
        i += 1
    if in_class:
        raise ValueError("missing closing ]")
    return "".join(out)


def _go_escape(ch: str, in_class: bool) -> str:
    if ch.isascii() and not ch.isalnum():
        return re.escape(ch) if ch != "-" or not in_class else "\\-"
    table = _GO_CLASS_ESCAPES if in_class else _GO_LETTER_ESCAPES
    if ch in table:
        return table[ch]
    raise ValueError(f"invalid escape sequence '\\{ch}'")


class Pattern(Value):
    """One compiled pattern: ``text`` without its ``!``, and whether it re-includes.

    ``kind`` is patternmatcher's match type: ``exact`` (the path is the pattern),
    ``prefix`` (``dir/**``), ``suffix`` (``**/name``, ``**name``) or ``regexp``.
    """

    text: str
    exclusion: bool
    kind: MatchType = "exact"
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def compile(cls, raw: str, origin: str = "") -> Pattern:
        """Compile one pattern as patternmatcher's ``New`` does (trimmed, cleaned, then
        the ``!``); ``origin`` (a file and line) is named in errors."""
        where = f"{origin}: " if origin else ""
        text = clean(raw.strip())
        exclusion = text.startswith("!")
        if exclusion:
            if len(text) == 1:
                raise IgnorePatternError(
                    f'{where}illegal exclusion pattern: "!"',
                    hint="write the path to re-include after '!'",
                )
            text = text[1:]
        reason = syntax_error(text)
        kind, go = docker_regexp(text)
        regex = None
        if reason is None and kind == "regexp":
            try:
                regex = re.compile(python_regexp(go[1:-1]).join(("^", "\\Z")))
            except (ValueError, re.error) as exc:
                reason = f"its regular expression {go} does not compile ({exc})"
        if reason is not None:
            raise IgnorePatternError(
                f"{where}ignore pattern {raw.strip()!r} is malformed: {reason}",
                hint="fix the pattern (escape a literal '[', ']', '-' or '\\' with '\\')",
            )
        return cls(text, exclusion, kind, regex)

    def match(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) matches this pattern itself."""
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        assert self.regex is not None
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
            try:
                if not Pattern.compile(pat_parts[i]).match(part):
                    return False
            except IgnorePatternError:
                return True  # a class spanning a '/': cannot tell, so walk
        return len(pat_parts) > len(dir_parts)


def _go_dir(path: str) -> str:
    """Go's ``filepath.Dir``: all but the last element, cleaned (``"."`` for none)."""
    return clean(path[: path.rfind("/") + 1])


#: Per-pattern "matched" flags of a directory, handed down to its children.
ParentMatches = tuple[bool, ...]


class Matcher:
    """An ordered list of patterns deciding which context paths are excluded.

    ``patterns`` are normalised lines (as :func:`parse_ignore` returns them); blank ones
    are skipped, as patternmatcher's ``New`` does. ``origins`` (one per pattern, such as
    ``".dockerignore line 3"``) are named when a pattern is malformed.
    """

    def __init__(self, patterns: Iterable[str] = (), origins: Sequence[str] = ()) -> None:
        compiled = []
        for i, raw in enumerate(patterns):
            if raw.strip():
                compiled.append(Pattern.compile(raw, origins[i] if i < len(origins) else ""))
        self.patterns: tuple[Pattern, ...] = tuple(compiled)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) or one of its parents is excluded.

        Docker's ``MatchesOrParentMatches``: a pattern matching a parent directory
        matches the path.
        """
        path = clean(path)
        parent = _go_dir(path)
        parent_dirs = parent.split("/") if parent != "." else []
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
        parent = _go_dir(path)
        if parent == ".":
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


def context_matcher(
    context: Path, extra: Sequence[str] = (), dockerfile: Path | None = None
) -> Matcher:
    """The rules of the ignore file that applies (see :func:`read_ignore_file`) followed
    by ``extra`` patterns (a copy's ``ignore=``)."""
    path, text = _ignore_file_text(context, dockerfile)
    lines = [(p, f"{path} line {n}") for n, p in ignore_file_lines(text)]
    for pattern in extra:
        normal = normalize_line(pattern)
        if normal:
            lines.append((normal, "Image.copy(ignore)"))
    return Matcher([p for p, _ in lines], [o for _, o in lines])
