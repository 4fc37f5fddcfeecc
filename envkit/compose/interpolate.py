"""Compose's variable interpolation: ``$X``, ``${X}``, ``${X:-default}`` and the rest.

The rules are compose's (compose-spec ``12-interpolation.md``, compose-go ``template``):

- ``$$`` is a literal ``$``; a ``$`` not followed by a name or ``{`` stays as is.
- ``$NAME`` and ``${NAME}``: the value, or the empty string when unset (with a warning).
  A name is ``[A-Za-z_][A-Za-z0-9_]*``.
- ``${NAME:-default}``: ``default`` when NAME is unset or empty; ``${NAME-default}``:
  only when unset.
- ``${NAME:?message}``: an error when unset or empty; ``${NAME?message}``: when unset.
- ``${NAME:+replacement}``: ``replacement`` when NAME is set and not empty;
  ``${NAME+replacement}``: when set.
- The text after the operator is itself interpolated (``${A:-${B:-c}}``), and runs to
  the matching ``}`` (braces nest: ``${X:-{"json":1}}``).
- Anything else inside ``${...}`` (``${}``, ``${ X}``, ``${X!}``, an unclosed ``${``) is
  an invalid template.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from envkit.errors import InterpolationError, MissingRequired

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")


def substitute(
    template: str,
    variables: Mapping[str, str],
    on_unset: Callable[[str], None] | None = None,
) -> str:
    """``template`` with its variables replaced from ``variables``.

    ``on_unset(name)`` is called for each plain ``$NAME``/``${NAME}`` that has no value
    (compose warns "The NAME variable is not set. Defaulting to a blank string.").
    Raises :class:`InterpolationError` for an invalid template and
    :class:`MissingRequired` for ``${NAME?...}`` without a value.
    """
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        char = template[i]
        if char != "$" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = _closing_brace(template, i + 1)
            if end < 0:
                raise InterpolationError(f"Invalid template: {template!r}")
            out.append(_braced(template[i + 2 : end], template, variables, on_unset))
            i = end + 1
            continue
        match = _NAME_RE.match(template, i + 1)
        if match is None:
            out.append(char)
            i += 1
            continue
        out.append(_lookup(match.group(), variables, on_unset))
        i = match.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """The index of the ``}`` closing the ``{`` at ``start`` (braces nest), or -1."""
    depth = 0
    i = start
    while i < len(text):
        if text[i] == "{":
            depth += 1
            i += 2  # compose skips the character after each '{'
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _braced(
    body: str,
    template: str,
    variables: Mapping[str, str],
    on_unset: Callable[[str], None] | None,
) -> str:
    match = _NAME_RE.match(body)
    if match is None:
        raise InterpolationError(f"Invalid template: {template!r}")
    name, rest = match.group(), body[match.end() :]
    if not rest:
        return _lookup(name, variables, on_unset)
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise InterpolationError(f"Invalid template: {template!r}")
    arg = rest[len(operator) :]
    value = variables.get(name)
    is_set = value is not None
    non_empty = bool(value)
    if operator in (":?", "?"):
        if (operator == ":?" and not non_empty) or not is_set:
            raise MissingRequired(name, substitute(arg, variables, on_unset))
        return value or ""
    if operator in (":-", "-"):
        use_default = not non_empty if operator == ":-" else not is_set
        return substitute(arg, variables, on_unset) if use_default else (value or "")
    use_replacement = non_empty if operator == ":+" else is_set
    return substitute(arg, variables, on_unset) if use_replacement else (value or "")


def _lookup(name: str, variables: Mapping[str, str], on_unset: Callable[[str], None] | None) -> str:
    value = variables.get(name)
    if value is None:
        if on_unset is not None:
            on_unset(name)
        return ""
    return value
