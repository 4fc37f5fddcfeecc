"""Compose's ``.env`` and ``env_file`` format (compose-go's ``dotenv`` parser rules).

- One ``KEY=VALUE`` (or ``KEY: VALUE``) a statement; ``export KEY=VALUE`` is accepted;
  blank lines and lines starting with ``#`` are skipped.
- A key alone on its line takes its value from the environment (left out if unset).
- Unquoted values end at the line's end, lose trailing blanks and a `` #`` comment, and
  are interpolated (``${X:-d}`` as in compose files).
- ``"double quoted"`` values may span lines, understand ``\\n``, ``\\t``, ``\\"``,
  ``\\\\``, ``\\$`` (a literal ``$``) and are interpolated; ``'single quoted'`` ones are
  literal (``\\'`` is a quote).
- Interpolation sees the environment first, then the keys defined above in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from envkit.compose.interpolate import substitute
from envkit.errors import InterpolationError, StackFileError

_SPACE = "\t\v\f\r \x85\xa0"
_ESCAPES = {"a": "\a", "b": "\b", "c": "\\c", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE_RE = re.compile(r'\\(?:([abcfnrtv$"\\])|0([0-7]{0,3}))')


def parse(text: str, source: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of env-file ``text`` (``source`` names it in errors); ``environ``
    answers keys without a value and ``$X`` in values."""
    text = text.removeprefix("\ufeff")
    out: dict[str, str] = {}
    pos, line, n = 0, 1, len(text)

    def where() -> str:
        return f"{source}:{line}"

    while True:
        # the start of the next statement: skip blanks and comment lines
        while pos < n and (text[pos].isspace()):
            if text[pos] == "\n":
                line += 1
            pos += 1
        if pos >= n:
            return out
        if text[pos] == "#":
            end = text.find("\n", pos)
            if end < 0:
                return out
            pos = end
            continue
        match = re.match(r"export[" + _SPACE + r"]+", text[pos:])
        if match:
            pos += match.end()
        start = pos
        sep = ""
        while pos < n:
            char = text[pos]
            if char in "=:\n":
                sep = char
                break
            if not (char in _SPACE or char in "_.-[]" or char.isalnum()):
                first = text[start:].split("\n", 1)[0]
                raise StackFileError(
                    f"{where()}: unexpected character {char!r} in variable name {first!r}",
                    hint="write KEY=VALUE, one a line",
                )
            pos += 1
        key = text[start:pos].rstrip()
        if " " in key:
            raise StackFileError(f"{where()}: key cannot contain a space", hint=value_hint(key))
        if sep in ("", "\n"):  # a key alone: inherited from the environment
            if key in environ:
                out[key] = environ[key]
            continue
        pos += 1
        while pos < n and text[pos] in _SPACE:
            pos += 1
        lookup = _Lookup(environ, out)
        if pos < n and text[pos] in "'\"":
            quote = text[pos]
            value, pos, lines = _quoted(text, pos, quote, where())
            line += lines
            if quote == '"':
                value = _expand(_unescape(value), lookup, where())
        else:
            end = text.find("\n", pos)
            end = n if end < 0 else end
            raw = text[pos:end].split(" #", 1)[0].rstrip()
            value = _expand(raw, lookup, where())
            pos = end
        out[key] = value


def value_hint(key: str) -> str:
    """A hint for a key with a space in it."""
    return f"use a name without spaces, e.g. {key.replace(' ', '_')}"


class _Lookup(dict[str, str]):
    def __init__(self, environ: Mapping[str, str], defined: Mapping[str, str]) -> None:
        super().__init__(defined)
        self.update(environ)


def _quoted(text: str, pos: int, quote: str, where: str) -> tuple[str, int, int]:
    """The body of the quoted value at ``pos``, the position after it, lines crossed."""
    chars: list[str] = []
    escaped = False
    lines = 0
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == "\n":
            lines += 1
        if char != quote:
            if not escaped and char == "\\":
                escaped = True
            else:
                if escaped:
                    chars.append("\\")
                    escaped = False
                chars.append(char)
            i += 1
            continue
        if escaped:
            escaped = False
            chars.append(char)
            i += 1
            continue
        return "".join(chars), i + 1, lines
    first = text[pos:].split("\n", 1)[0]
    raise StackFileError(f"{where}: unterminated quoted value {first}", hint=f"close the {quote}")


def _unescape(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$$"
        if match.group(1) is not None:
            char = match.group(1)
            return _ESCAPES.get(char, "\v" if char == "v" else char)
        return chr(int(match.group(2) or "0", 8))

    return _ESCAPE_RE.sub(one, value)


def _expand(value: str, lookup: Mapping[str, str], where: str) -> str:
    try:
        return substitute(value, lookup)
    except InterpolationError as exc:
        raise StackFileError(f"{where}: {exc.message}", hint="fix the variable reference") from None
