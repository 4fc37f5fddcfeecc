"""Checks shared by the spec objects; each raises :class:`~envkit.errors.SpecError`.

Every checker takes ``field``, the name shown to the user (``"Service('web').ports"``),
and returns the value normalised (a tuple for a sequence, sorted pairs for a mapping).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from envkit.errors import SpecError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

# Patterns, compiled by re on first use (an Image's build needs neither).
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_USER_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_USER_RE = rf"^{_USER_PART}(?::{_USER_PART})?$"


def reject_unknown(owner: str, unknown: Mapping[str, object], func: Callable[..., Any]) -> None:
    """Raise for the first keyword in ``unknown``, suggesting the closest one ``func`` takes.

    Spec constructors collect unexpected keywords in ``**unknown`` so that a typo gives a
    SpecError with a suggestion instead of a bare ``TypeError``.
    """
    if not unknown:
        return
    # lazy: only on this error path (spec objects are built at every start-up)
    import difflib
    import inspect

    valid = [
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    ]
    key = sorted(unknown)[0]
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "valid options: " + ", ".join(valid)
    raise SpecError(f"{owner}.{key}", "unknown option", hint=hint)


def name(field: str, value: object, *, what: str = "name") -> str:
    """A name of a service, volume, network or secret: letters, digits, ``_ . -``."""
    if not isinstance(value, str) or not re.match(_NAME_RE, value):
        raise SpecError(
            field,
            f"invalid {what}",
            value=value,
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    return value


def boolean(field: str, value: object) -> bool:
    """True or False (not a truthy value)."""
    if not isinstance(value, bool):
        raise SpecError(field, "expected True or False", value=value)
    return value


def string(field: str, value: object, *, allow_empty: bool = False) -> str:
    """A plain string without NUL bytes."""
    if not isinstance(value, str):
        raise SpecError(field, f"expected a string, not {type(value).__name__}", value=value)
    if not allow_empty and not value:
        raise SpecError(field, "must not be empty", value=value)
    if "\0" in value:
        raise SpecError(field, "must not contain NUL bytes", value=value)
    return value


def path(field: str, value: object) -> str:
    """A path kept as given (``os.PathLike`` becomes ``str``)."""
    if hasattr(value, "__fspath__"):
        value = value.__fspath__()
    return string(field, value)


def absolute_path(field: str, value: object) -> str:
    """A path inside a container: absolute."""
    text = string(field, value)
    if not text.startswith("/"):
        raise SpecError(field, "must be an absolute path", value=value, hint=f"use '/{text}'")
    return text


_SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size(field: str, value: object, *, what: str = "size") -> int:
    """Bytes (> 0) from ``268435456``, ``"256m"``, ``"1.5g"``, ``"512MiB"``, ``"1gb"``
    (1024-based, as docker and compose count)."""
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str) and (match := _SIZE_RE.match(value.strip())):
        amount = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    else:
        raise SpecError(field, f"invalid {what}", value=value, hint='e.g. "256m" or "1g"')
    if amount <= 0:
        raise SpecError(field, "must be > 0", value=value)
    return amount


def mount_target(field: str, value: object) -> str:
    """Where a mount goes in a container: an absolute path below ``/`` (docker refuses
    a mount over the root: "destination can't be '/'")."""
    text = absolute_path(field, value)
    if posixpath.normpath(text) == "/":
        raise SpecError(
            field,
            "cannot mount over the container's root",
            value=value,
            hint="mount it at a directory below /, e.g. /data",
        )
    return text


def argv(field: str, value: object, *, allow_empty: bool = False) -> tuple[str, ...]:
    """A command in exec form: a sequence of strings (a bare string is not accepted)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise SpecError(
            field,
            "expected a list of strings",
            value=value,
            hint='write ["prog", "arg"], or pass one string for the shell form',
        )
    items = tuple(string(f"{field}[{i}]", v, allow_empty=True) for i, v in enumerate(value))
    if not items and not allow_empty:
        raise SpecError(field, "must not be empty", value=value)
    return items


def str_mapping(
    field: str, value: object, *, key_check: Callable[[str, object], str] | None = None
) -> tuple[tuple[str, str], ...]:
    """A mapping of strings to strings (numbers are converted), as sorted pairs."""
    if not isinstance(value, Mapping):
        raise SpecError(field, "expected a mapping", value=value)
    out: dict[str, str] = {}
    for key, item in value.items():
        k = key_check(field, key) if key_check else string(field, key)
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise SpecError(
                f"{field}[{k!r}]",
                "expected a string or a number",
                value=item,
                hint='quote it: "true" rather than True',
            )
        out[k] = string(f"{field}[{k!r}]", str(item), allow_empty=True)
    return tuple(sorted(out.items()))


def env_name(field: str, value: object) -> str:
    """An environment variable name: non-empty, no ``=``."""
    text = string(field, value)
    if "=" in text:
        raise SpecError(field, "an environment variable name cannot contain '='", value=value)
    return text


def user(field: str, value: object) -> str:
    """``uid[:gid]`` or ``name[:group]``; an int is taken as a uid."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not re.match(_USER_RE, value):
        raise SpecError(
            field, "invalid user", value=value, hint='use "uid[:gid]" or "name[:group]"'
        )
    return value


def port(field: str, value: object, *, allow_zero: bool = False) -> int:
    """A port number 1..65535 (0 too with ``allow_zero``: any free port)."""
    low = 0 if allow_zero else 1
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise SpecError(field, f"port must be a number {low}..65535", value=value)
    return value


def number(field: str, value: object, *, positive: bool = True) -> float:
    """A number, > 0 (or >= 0 without ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(field, "expected a number", value=value)
    if value != value or value in (float("inf"), float("-inf")):
        raise SpecError(field, "must be finite", value=value)
    if (positive and value <= 0) or value < 0:
        raise SpecError(field, "must be > 0" if positive else "must be >= 0", value=value)
    return float(value)


def count(field: str, value: object, *, minimum: int = 1) -> int:
    """A whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(field, f"expected a whole number >= {minimum}", value=value)
    return value


def choice(field: str, value: object, options: Iterable[str]) -> str:
    """One of ``options``."""
    allowed = list(options)
    if value not in allowed:
        import difflib  # lazy: only on this error path

        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "use one of: " + ", ".join(allowed)
        raise SpecError(field, "not a valid choice", value=value, hint=hint)
    return str(value)


def strings(field: str, value: object) -> tuple[str, ...]:
    """A sequence of strings (a bare string is refused: it would be read as characters)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise SpecError(field, "expected a list of strings", value=value)
    return tuple(string(f"{field}[{i}]", v) for i, v in enumerate(value))
