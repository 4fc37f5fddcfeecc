"""A Dockerfile's text as BuildKit's parser reads it: a tree of :class:`Node`.

Follows ``frontend/dockerfile/parser`` rule for rule: parser directives (``# escape=``,
``# syntax=``, ``# check=``) only before anything else; comment lines dropped, also inside
continuations; a line whose last non-blank character is the escape character continues,
unless that character is itself escaped (``\\\\``); empty continuation lines are
skipped with a warning; each instruction's arguments are split by the rule of its
instruction (JSON or words, ``KEY value`` or ``KEY=value``...); ``<<WORD`` in RUN, COPY
and ADD (not in their JSON form) starts a heredoc. :meth:`Node.dump` prints the tree as
BuildKit's ``Node.Dump`` does, which is what its parser test files hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from envkit.build.dockerfile_lex import ShellLex, is_space
from envkit.records import Record, Value, field

MAX_LINE = 64 * 1024
_WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_DIRECTIVE_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = frozenset({"syntax", "escape", "check"})
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})


class ParseError(ValueError):
    """A Dockerfile BuildKit's parser refuses; ``line`` is 1-based (0: the whole file)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class Heredoc(Value):
    """One ``<<NAME`` document; ``expand`` is false when the name was quoted."""

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0


class ParseWarning(Value):
    """A parser warning (BuildKit's ``Warning``): its text and the line it is about."""

    short: str
    line: int


class Node(Record):
    """BuildKit's ``Node``: ``value``, the ``next`` argument, ``children`` sub-nodes."""

    value: str = ""
    next: Node | None = None
    children: list[Node] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)
    attributes: dict[str, bool] = field(default_factory=dict)
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0

    @property
    def is_json(self) -> bool:
        """Whether the arguments were given in JSON form."""
        return self.attributes.get("json", False)

    def args(self) -> list[str]:
        """The argument values (BuildKit's ``nodeArgs``), a sub-command inlined."""
        out: list[str] = []
        node = self
        while node.next is not None:
            arg = node.next
            if not arg.children:
                out.append(arg.value)
            elif len(arg.children) == 1:
                out.append(arg.children[0].value)
                out.extend(arg.children[0].args())
            node = arg
        return out

    def dump(self) -> str:
        """The tree as s-expressions, exactly as BuildKit's ``Node.Dump``."""
        out = [self.value.lower()]
        if self.flags:
            out.append(" [" + " ".join(go_quote(f) for f in self.flags) + "]")
        for child in self.children:
            out.append("(" + child.dump() + ")\n")
        node = self.next
        while node is not None:
            out.append(" " + (node.dump() if node.children else go_quote(node.value)))
            node = node.next
        return "".join(out).strip(" \t\n\r\v\f")


class ParseResult(Record):
    """The root node (its children are the instructions), the escape token, warnings."""

    root: Node
    escape: str
    warnings: list[ParseWarning]


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out) + '"'


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPES["\v"] = "\\v"


# -- directives and continuation lines ---------------------------------------------------


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.continuation = self._continuation_re("\\")
        self.seen: set[str] = set()
        self.done = False

    @staticmethod
    def _continuation_re(token: str) -> re.Pattern[str]:
        esc = re.escape(token)
        return re.compile(rf"([^{esc}]){esc}[ \t]*$|^{esc}[ \t]*$")

    def possible_directive(self, line: str) -> bool:
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        found = _DIRECTIVE_RE.search(line[1:].lstrip())
        if found is None or found.group(1).lower() not in _DIRECTIVES:
            self.done = True
            return False
        key = found.group(1).lower()
        if key in self.seen:
            raise ValueError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            value = found.group(2)
            if value not in ("`", "\\"):
                raise ValueError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = self._continuation_re(value)
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        if self.continuation.search(line):
            return self.continuation.sub(lambda m: m.group(1) or "", line, count=1), False
        return line, True


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _lstrip_go(line).startswith("#")


def _lstrip_go(text: str) -> str:
    i = 0
    while i < len(text) and is_space(text[i]):
        i += 1
    return text[i:]


def _process_line(d: _Directives, line: str, strip_left: bool) -> tuple[str, bool]:
    line = _trim_newline(line)
    if strip_left:
        line = _lstrip_go(line)
    directive = d.possible_directive(line)
    return ("" if _is_comment(line) else line), directive


def _lines(text: str) -> list[str]:
    """Lines with their endings kept (Go's scanLines variant), BOM dropped."""
    pieces = text.split("\n")
    out = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    if out:
        out[0] = out[0].removeprefix("\ufeff")
    for number, line in enumerate(out, 1):
        if len(line.encode()) > MAX_LINE:
            raise ParseError(
                f"dockerfile line greater than max allowed size of {MAX_LINE - 1}", number
            )
    return out


def parse(text: str) -> ParseResult:
    """Parse Dockerfile ``text``; :class:`ParseError` names the line of what is wrong."""
    d = _Directives()
    lines = _lines(text)
    root = Node(start_line=-1)
    warnings: list[ParseWarning] = []
    i = 0
    current = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        try:
            line, _ = _process_line(d, raw, True)
        except ValueError as exc:
            raise ParseError(str(exc), current + 1) from None
        current += 1
        start = current
        line, end_of_line = d.trim_continuation(line)
        if end_of_line and not line:
            continue
        parts = [line]
        empty_continuation = False
        while not end_of_line and i < len(lines):
            raw = lines[i]
            i += 1
            try:
                more, _ = _process_line(d, raw, False)
            except ValueError as exc:
                raise ParseError(str(exc), current + 1) from None
            current += 1
            if _is_comment(raw):
                continue
            if not _lstrip_go(_trim_newline(more)):
                empty_continuation = True
                continue
            more, end_of_line = d.trim_continuation(more)
            parts.append(more)
        logical = "".join(parts)
        if empty_continuation:
            warnings.append(ParseWarning("Empty continuation line found in: " + logical, current))
        try:
            child = node_from_line(logical, d.escape)
        except ValueError as exc:
            raise ParseError(str(exc), start) from None
        if _can_contain_heredoc(child) and "<<" in logical:
            try:
                docs = heredocs_from_line(logical)
            except ValueError as exc:
                raise ParseError(str(exc), start) from None
            for doc in docs:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    current += 1
                    possible = _trim_newline(raw)
                    if doc.chomp:
                        possible = possible.lstrip("\t")
                    if possible == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise ParseError("unterminated heredoc", start)
                child.heredocs.append(
                    Heredoc(doc.name, doc.content + "".join(body), doc.expand, doc.chomp, doc.fd)
                )
        child.start_line, child.end_line = start, current
        if root.start_line < 0:
            root.start_line = start
        root.end_line = current
        root.children.append(child)
    if root.start_line < 0:
        raise ParseError("file with no instructions", current)
    return ParseResult(root, d.escape, warnings)


def _can_contain_heredoc(node: Node) -> bool:
    if node.value.lower() == "onbuild" and node.next is not None and node.next.children:
        node = node.next.children[0]
    return node.value.lower() in HEREDOC_INSTRUCTIONS and not node.is_json


# -- heredoc words -------------------------------------------------------------------------


def parse_heredoc(src: str) -> Heredoc | None:
    """The heredoc ``src`` (one word such as ``<<EOF``, ``<<-'EOF'``, ``3<<EOF``) starts,
    or None; ValueError for a malformed one (``<<'EOF``)."""
    found = _HEREDOC_RE.match(src)
    if found is None or not found.group(3):
        return None
    fd, chomp, rest = found.groups()
    lex = ShellLex("\\", skip_unset_env=True)
    words = lex.process_words(rest, {})
    if len(words) != 1:
        return None
    lex.raw_quotes = True
    raw_words = lex.process_words(rest, {})
    if len(raw_words) != len(words):
        raise ValueError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word, raw = words[0], raw_words[0]
    quotes = word.count("'") + word.count('"')
    raw_quotes = raw.count("'") + raw.count('"')
    return Heredoc(word, expand=quotes == raw_quotes, chomp=chomp == "-", fd=int(fd or 0))


def heredocs_from_line(line: str) -> list[Heredoc]:
    """The heredocs an instruction line opens, in order."""
    lex = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line, {})
    except ValueError:
        words = []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc(content: str) -> str:
    """``content`` with the leading tabs of each line removed (``<<-``)."""
    return re.sub(r"(?m)^\t+", "", content)


# -- instruction lines ---------------------------------------------------------------------


def node_from_line(line: str, escape: str) -> Node:
    """One logical line as a node: its command, flags and arguments."""
    command, flags, args = split_command(line, escape)
    parse_args = _DISPATCH.get(command.lower(), _parse_ignore)
    next_node, attrs = parse_args(args, escape)
    return Node(command, next_node, attributes=attrs, original=line, flags=flags)


def split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """``(command, flags, rest)`` of an instruction line."""
    parts = _WHITESPACE_RE.split(line.strip(" \t\n\r\v\f"), maxsplit=1)
    args, flags = "", list[str]()
    if len(parts) == 2:
        args, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, args.strip(" \t\n\r\v\f")


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase, quote, blank_ok = in_spaces, "", False
    pos = 0
    while pos <= len(line):
        ch = line[pos] if pos < len(line) else ""
        if phase == in_spaces:
            if pos == len(line):
                break
            if is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == len(line) or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == len(line):
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == in_word:
            if is_space(ch):
                text = "".join(word)
                phase = in_spaces
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, in_quote
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == len(line):
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == len(line):
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def parse_words(rest: str, escape: str) -> list[str]:
    """Words split on white space, quotes and escapes kept (BuildKit's ``parseWords``)."""
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase, quote, blank_ok = in_spaces, "", False
    pos = 0
    while pos <= len(rest):
        ch = rest[pos] if pos < len(rest) else ""
        if phase == in_spaces:
            if pos == len(rest):
                break
            if is_space(ch):
                pos += 1
                continue
            phase = in_word
        if pos == len(rest):
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == in_word:
            if is_space(ch):
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, in_quote
            if ch == escape:
                if pos + 1 == len(rest):
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == len(rest):
                phase = in_word
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


_Parsed = tuple[Node | None, dict[str, bool]]


def _parse_ignore(rest: str, escape: str) -> _Parsed:
    return Node(), {}


def _parse_sub_command(rest: str, escape: str) -> _Parsed:
    if not rest:
        return None, {}
    return Node(children=[node_from_line(rest, escape)]), {}


def _key_value_node(key: str, value: str, sep: str) -> Node:
    return Node(key, Node(value, Node(sep)))


def _parse_name_val(rest: str, key: str, escape: str) -> Node | None:
    words = parse_words(rest, escape)
    if not words:
        return None
    if "=" not in words[0]:
        parts = _WHITESPACE_RE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return _key_value_node(parts[0], parts[1], "")
    root: Node | None = None
    last: Node | None = None
    for word in words:
        if "=" not in word:
            raise ValueError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        name, _, value = word.partition("=")
        node = _key_value_node(name, value, "=")
        if root is None:
            root = node
        if last is not None:
            last.next = node
        last = node.next.next if node.next is not None else node
    return root


def _chain(values: list[str]) -> Node | None:
    root: Node | None = None
    for value in reversed(values):
        root = Node(value, root)
    return root


def _parse_name_or_name_val(rest: str, escape: str) -> _Parsed:
    return _chain(parse_words(rest, escape)), {}


def _parse_whitespace_delimited(rest: str, escape: str) -> _Parsed:
    if not rest:
        return None, {}
    return _chain(_WHITESPACE_RE.split(rest)), {}


def _parse_string(rest: str, escape: str) -> _Parsed:
    if not rest:
        return None, {}
    return Node(rest), {}


class _NotStringArray(ValueError):
    pass


def _parse_json(rest: str) -> _Parsed:
    rest = _lstrip_go(rest)
    if not rest.startswith("["):
        raise ValueError("not a JSON array")
    value = json.loads(rest)
    if not isinstance(value, list):
        raise ValueError("not a JSON array")
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray(
            "when using JSON array syntax, arrays must be comprised of strings only"
        )
    return _chain(value), {"json": True}


def _parse_maybe_json(rest: str, escape: str) -> _Parsed:
    if not rest:
        return None, {}
    try:
        return _parse_json(rest)
    except _NotStringArray:
        raise
    except ValueError:
        return Node(rest), {}


def _parse_maybe_json_to_list(rest: str, escape: str) -> _Parsed:
    try:
        return _parse_json(rest)
    except _NotStringArray:
        raise
    except ValueError:
        return _parse_whitespace_delimited(rest, escape)


def _parse_health_config(rest: str, escape: str) -> _Parsed:
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    following = sep
    while following < len(rest) and is_space(rest[following]):
        following += 1
    if sep == 0:
        return None, {}
    command, attrs = _parse_maybe_json(rest[following:], escape)
    return Node(rest[:sep], command), attrs


_DISPATCH: dict[str, Callable[[str, str], _Parsed]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": lambda rest, escape: (_parse_name_val(rest, "ENV", escape), {}),
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": lambda rest, escape: (_parse_name_val(rest, "LABEL", escape), {}),
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}
