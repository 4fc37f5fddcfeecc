"""Dockerfile variable expansion and word splitting, as BuildKit's shell lexer does them.

:class:`ShellLex` follows ``frontend/dockerfile/shell/lex.go`` rule for rule: ``$VAR``,
``${VAR}``, ``${VAR:-w}``, ``${VAR-w}``, ``${VAR:+w}``, ``${VAR+w}``, ``${VAR:?w}``,
``${VAR?w}``, ``${VAR#p}``, ``${VAR##p}``, ``${VAR%p}``, ``${VAR%%p}``, ``${VAR/p/r}`` and
``${VAR//p/r}``; positional and special parameters (``$1``, ``${@}``, ``$$``...) are
never set; single quotes are literal, double quotes expand, the escape character
escapes. :meth:`ShellLex.process_word` gives one string (what ENV, WORKDIR, COPY...
use), :meth:`ShellLex.process_words` splits the result on unquoted white space (what
EXPOSE uses). Both record which variables were found and which were not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from envkit.records import Record, field

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace`` (Python's ``isspace`` also counts \\x1c-\\x1f)."""
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


class WordResult(Record):
    """What one expansion gave: the word, its split words, the variables it used."""

    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


class _Words:
    """Word splitting of an expansion's output (BuildKit's ``wordsStruct``)."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf, self.in_word = "", False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf, self.in_word = "", False
        return self.words


class ShellLex(Record):
    """BuildKit's ``shell.Lex``: the options are its fields of the same names."""

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def process_word(self, word: str, env: Mapping[str, str]) -> WordResult:
        """``word`` expanded as one string; ValueError when malformed."""
        return _Scan(self, word, env).run()

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """``word`` expanded and split on unquoted white space."""
        return _Scan(self, word, env).run().words


class _Scan:
    def __init__(self, lex: ShellLex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def run(self) -> WordResult:
        try:
            word, words = self.stop_on(_EOF, self.lex.raw_escapes)
        except ValueError as exc:
            raise ValueError(f"failed to process {_go_quote(self.text)}: {exc}") from None
        return WordResult(word, words, self.matched, self.unmatched)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        quotes = not self.lex.skip_process_quotes
        escape = self.lex.escape
        while self.peek() != _EOF:
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "$":
                text = self.dollar()
                result.append(text)
                words.add_string(text)
            elif ch == "<":
                text = self.possible_heredoc()
                result.append(text)
                words.add_raw(text)
            elif quotes and ch in "'\"":
                text = self.single_quoted() if ch == "'" else self.double_quoted()
                result.append(text)
                words.add_raw(text)
            else:
                ch = self.next()
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ValueError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quoted(self) -> str:
        opening = self.next()
        out = [opening] if self.lex.raw_quotes else []
        while True:
            ch = self.next()
            if ch == _EOF:
                raise ValueError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        opening = self.next()
        out = [opening] if self.lex.raw_quotes else []
        escape = self.lex.escape
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise ValueError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", escape):
                    ch = self.next()
            out.append(ch)

    def get(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def name(self) -> str:
        out: list[str] = []
        while (ch := self.peek()) != _EOF:
            if not out and ch.isdecimal():
                while self.peek() != _EOF and self.peek().isdecimal():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()
        if self.peek() == _EOF:
            raise ValueError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise ValueError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value, found = self.get(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self.replace(name)
        if ch not in (":", "+", "-", "?", "#", "%") or ch == _EOF:
            raise ValueError(f"unsupported modifier ({ch or _GO_EOF}) in substitution")
        return self.modifier(name, ch)

    def modifier(self, name: str, ch: str) -> str:
        chs, null_is_unset = ch, False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch or _GO_EOF
        raw = ch in ("#", "%") and ch != _EOF
        if null_is_unset and raw:
            raise ValueError(f"unsupported modifier ({chs}) in substitution")
        word = self.until("}", raw, "syntax error: missing '}'")
        value, found = self.get(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + chs + word + "}"
        unset = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not found:
                raise ValueError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ValueError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("%", "#"):
            greedy = word[:1] == ch
            pattern = word[1:] if greedy else word
            return (
                trim_suffix(pattern, value, greedy)
                if ch == "%"
                else (trim_prefix(pattern, value, greedy))
            )
        raise ValueError(f"unsupported modifier ({chs}) in substitution")

    def replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self.until("/", True, "syntax error: missing '/' in ${}")
        replacement = self.until("}", True, "syntax error: missing '}'")
        value, found = self.get(name)
        if self.lex.skip_unset_env and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        try:
            regex = shell_pattern_regex(pattern, greedy=True, anchored=False)
        except ValueError as exc:
            raise ValueError(f"invalid pattern ({pattern}) in substitution: {exc}") from None
        if replace_all:
            return regex.sub(lambda _: replacement, value)
        found_at = regex.search(value)
        if found_at is None:
            return value
        return value[: found_at.start()] + replacement + value[found_at.end() :]

    def until(self, stop: str, raw: bool, at_eof: str) -> str:
        try:
            return self.stop_on(stop, raw)[0]
        except ValueError:
            if self.peek() == _EOF:
                raise ValueError(at_eof) from None
            raise

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space = []
        while self.peek() in ("\t", "\r", " ") and self.peek() != _EOF:
            space.append(self.next())
        return "<<" + "".join(space)


_GO_EOF = "\ufffd"  # what Go prints for string(scanner.EOF)


def shell_pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (``*``, ``?``, ``\\`` escapes; no brackets) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            i += 1
            if following not in ("*", "?", "\\"):
                raise ValueError(f"invalid escape '\\{following}'")
            out.append("\\" + following)
        elif tok in "[]{}.+()|^$":
            out.append("\\" + tok)
        else:
            out.append(tok)
    return re.compile("".join(out))


def reverse_pattern(pattern: str) -> str:
    """``pattern`` reversed, keeping each escape before the character it escapes."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        at = last - i
        if tok == "\\" and i != last:
            out[at - 1] = tok
            out[at] = pattern[i + 1]
            i += 2
        else:
            out[at] = tok
            i += 1
    return "".join(out)


def trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    """``${value#pattern}`` (``##`` when greedy)."""
    try:
        regex = shell_pattern_regex(pattern, greedy=greedy, anchored=True)
    except ValueError as exc:
        raise ValueError(f"invalid pattern ({pattern}) in substitution: {exc}") from None
    found = regex.search(value)
    return value if found is None else value[found.end() :]


def trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    """``${value%pattern}`` (``%%`` when greedy), by trimming the reversed prefix."""
    return trim_prefix(reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``text`` as one word: variables expanded, quotes and escapes removed."""
    return ShellLex(escape).process_word(text, env).result


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` split into words on unquoted white space, each expanded."""
    return ShellLex(escape).process_words(text, env)


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
