"""Dockerfile text: directives, logical lines, heredocs, flags and variable expansion.

Follows BuildKit's parser: ``# escape=`` / ``# syntax=`` directives only at the very top;
comment lines are dropped (inside continuations too); a line ending in the escape
character continues on the next one; ``<<WORD`` in RUN/COPY/ADD starts a heredoc whose
body runs to a line holding only ``WORD`` (``<<-WORD`` strips leading tabs).
Expansion (:func:`expand_word`, :func:`expand_words`) is Docker's ShellLex: ``$VAR``,
``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:+alt}``, ``${VAR+alt}``,
``${VAR:?msg}``; single quotes are literal, double quotes expand, quotes are removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from envkit.errors import SpecError

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC_RE = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
_FLAG_RE = re.compile(r"\s*--([A-Za-z][A-Za-z0-9-]*)(?:=((?:\"[^\"]*\"|'[^']*'|\S)*))?(?=\s|$)")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


@dataclass(frozen=True)
class Heredoc:
    """One ``<<NAME`` body; ``expand`` is false when the delimiter was quoted."""

    name: str
    body: str
    expand: bool
    strip_tabs: bool


@dataclass
class Instruction:
    """One logical line: ``NAME rest`` starting at ``line`` (1-based)."""

    name: str
    rest: str
    line: int
    heredocs: list[Heredoc] = field(default_factory=list)
    flags: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Source:
    """A Dockerfile's directives and instructions."""

    path: str
    escape: str
    instructions: list[Instruction]

    def error(self, line: int, message: str, hint: str | None = None) -> SpecError:
        """A SpecError naming ``path:line``."""
        return SpecError(f"{self.path}:{line}", message, hint=hint)


def split(text: str, path: str) -> Source:
    """Split Dockerfile ``text`` into its instructions."""
    lines = text.removeprefix("\ufeff").splitlines()
    escape = "\\"
    i = 0
    while i < len(lines):
        found = _DIRECTIVE_RE.match(lines[i])
        if not found:
            break
        if found.group(1).lower() == "escape":
            escape = found.group(2)
            if escape not in ("\\", "`"):
                raise SpecError(
                    f"{path}:{i + 1}", f"invalid escape character {escape!r}", hint="use \\ or `"
                )
        i += 1
    source = Source(path, escape, [])
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        line = lines[i].lstrip()
        while True:
            trimmed = line.rstrip()
            if trimmed.endswith(escape) and i + 1 < len(lines):
                parts.append(trimmed[: -len(escape)])
                i += 1
                while i < len(lines) and (
                    not lines[i].strip() or lines[i].lstrip().startswith("#")
                ):
                    i += 1
                if i >= len(lines):
                    break
                line = lines[i]
                continue
            parts.append(trimmed[: -len(escape)] if trimmed.endswith(escape) else line)
            break
        i += 1
        logical = "".join(parts)
        name, _, rest = logical.strip().partition(" ")
        if "\t" in name:
            name, _, more = name.partition("\t")
            rest = more + " " + rest
        inst = Instruction(name.upper(), rest.strip(), start + 1)
        if inst.name in HEREDOC_INSTRUCTIONS:
            i = _read_heredocs(inst, lines, i, source)
        source.instructions.append(inst)
    return source


def _read_heredocs(inst: Instruction, lines: list[str], i: int, source: Source) -> int:
    for found in _HEREDOC_RE.finditer(inst.rest):
        strip, quote, word = found.groups()
        body: list[str] = []
        while True:
            if i >= len(lines):
                raise source.error(
                    inst.line, f"heredoc <<{word} is not terminated", hint=f"end it with {word}"
                )
            text = lines[i]
            i += 1
            check = text.lstrip("\t") if strip else text
            if check == word:
                break
            body.append(check)
        inst.heredocs.append(Heredoc(word, "".join(b + "\n" for b in body), not quote, bool(strip)))
    return i


def take_flags(inst: Instruction, source: Source, allowed: frozenset[str]) -> None:
    """Move the leading ``--name[=value]`` flags of ``inst.rest`` into ``inst.flags``."""
    rest = inst.rest
    while rest.startswith("--"):
        found = _FLAG_RE.match(rest)
        if not found:
            break
        name, value = found.group(1), found.group(2)
        if name not in allowed:
            raise source.error(
                inst.line,
                f"{inst.name} --{name} is not supported",
                hint="supported flags: " + (", ".join(f"--{f}" for f in sorted(allowed)) or "none"),
            )
        inst.flags.setdefault(name, []).append("true" if value is None else value)
        rest = rest[found.end() :].lstrip()
    inst.rest = rest


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def words(self, split_words: bool) -> list[str]:
        words: list[str] = []
        current: list[str] = []
        in_word = False
        while self.pos < len(self.text):
            ch = self.next()
            if split_words and ch in " \t\n":
                if in_word:
                    words.append("".join(current))
                    current, in_word = [], False
                continue
            in_word = True
            if ch == "'":
                current.append(self._until("'"))
            elif ch == '"':
                current.append(self._double_quoted())
            elif ch == self.escape:
                current.append(self.next())
            elif ch == "$":
                current.append(self._variable())
            else:
                current.append(ch)
        if in_word or not split_words:
            words.append("".join(current))
        return words

    def _until(self, quote: str) -> str:
        end = self.text.find(quote, self.pos)
        if end < 0:
            raise ValueError(f"unmatched {quote}")
        out = self.text[self.pos : end]
        self.pos = end + 1
        return out

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise ValueError('unmatched "')
            ch = self.next()
            if ch == '"':
                return "".join(out)
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.next())
            elif ch == "$":
                out.append(self._variable())
            else:
                out.append(ch)

    def _variable(self) -> str:
        if self.peek() == "{":
            self.next()
            found = _NAME_RE.match(self.text, self.pos)
            if not found:
                raise ValueError("bad substitution")
            name = found.group()
            self.pos = found.end()
            if self.peek() == "}":
                self.next()
                return self.env.get(name, "")
            op = self.next()
            if op == ":":
                op += self.next()
            if op not in (":-", ":+", ":?", "-", "+", "?"):
                raise ValueError(f"unsupported modifier {op!r} in ${{{name}...}}")
            word = self._word_until_brace()
            value = self.env.get(name)
            unset = value is None or (op.startswith(":") and value == "")
            if op.endswith("-"):
                return word if unset else str(value)
            if op.endswith("+"):
                return "" if unset else word
            if unset:
                raise ValueError(f"{name}: {word or 'is not set'}")
            return str(value)
        found = _NAME_RE.match(self.text, self.pos)
        if not found:
            return "$"
        self.pos = found.end()
        return self.env.get(found.group(), "")

    def _word_until_brace(self) -> str:
        out: list[str] = []
        depth = 0
        while True:
            if self.pos >= len(self.text):
                raise ValueError("missing '}'")
            ch = self.next()
            if ch == "}" and depth == 0:
                return "".join(out)
            if ch == self.escape:
                out.append(self.next())
            elif ch == "$":
                out.append(self._variable())
            elif ch == "'":
                out.append(self._until("'"))
            elif ch == '"':
                out.append(self._double_quoted())
            else:
                out.append(ch)


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``text`` as one word: variables expanded, quotes and escapes removed."""
    return _Lexer(text, env, escape).words(split_words=False)[0]


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` split into words on unquoted whitespace, each expanded."""
    return _Lexer(text, env, escape).words(split_words=True)


_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in seconds; ValueError if malformed."""
    pos, total = 0, 0.0
    if text == "0":
        return 0.0
    while pos < len(text):
        found = _DURATION_RE.match(text, pos)
        if not found:
            raise ValueError(f"invalid duration {text!r}")
        total += float(found.group(1)) * _UNITS[found.group(2)]
        pos = found.end()
    if not text:
        raise ValueError("empty duration")
    return total
