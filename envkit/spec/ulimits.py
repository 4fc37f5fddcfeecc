"""Resource limits of a container's processes (``docker run --ulimit``, compose's
``ulimits``): a name of docker's list, a soft and a hard value; ``-1`` is unlimited."""

from __future__ import annotations

from collections.abc import Mapping

from envkit.errors import SpecError

#: Docker's ulimit names (go-units' ``ulimitNameMapping``), each a Linux ``RLIMIT_*``.
NAMES = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)  # fmt: skip

#: One limit: (name, soft, hard), -1 for unlimited.
Ulimit = tuple[str, int, int]


def parse(field: str, value: object) -> tuple[Ulimit, ...]:
    """``{"nofile": 1024}``, ``{"nofile": (1024, 2048)}`` or compose's
    ``{"nofile": {"soft": 1024, "hard": 2048}}`` as limits sorted by name."""
    if not isinstance(value, Mapping):
        raise SpecError(field, "expected a mapping {name: limit}", value=value)
    found = [limit(f"{field}[{name!r}]", name, given) for name, given in value.items()]
    return tuple(sorted(found))


def limit(field: str, name: object, value: object) -> Ulimit:
    """One limit from a number (soft and hard alike), a (soft, hard) pair or a mapping
    with ``soft`` and ``hard``."""
    if name not in NAMES:
        raise SpecError(field, "unknown ulimit", value=name, hint=f"one of {', '.join(NAMES)}")
    if isinstance(value, Mapping):
        if set(value) != {"soft", "hard"}:
            raise SpecError(field, "expected soft and hard", value=value)
        pair: object = (value["soft"], value["hard"])
    elif isinstance(value, tuple | list):
        pair = tuple(value)
    else:
        pair = (value, value)
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise SpecError(field, "expected a number or (soft, hard)", value=value)
    soft, hard = (_number(field, v) for v in pair)
    if hard != -1 and (soft == -1 or soft > hard):
        raise SpecError(
            field, f"soft limit {soft} is above the hard limit {hard}", hint="lower the soft one"
        )
    return (str(name), soft, hard)


def parse_flag(text: str) -> Ulimit:
    """docker's ``--ulimit NAME=SOFT[:HARD]``."""
    name, eq, values = text.partition("=")
    if not eq or not values:
        raise SpecError(
            "--ulimit", "expected NAME=SOFT[:HARD]", value=text, hint="nofile=1024:2048"
        )
    soft, _, hard = values.partition(":")
    return limit("--ulimit", name, (_number("--ulimit", soft), _number("--ulimit", hard or soft)))


def _number(field: str, value: object) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise SpecError(field, "a limit is a number, -1 for unlimited", value=value)
    return value
