"""Image timestamps: the RFC 3339 ``created`` field of configs, parsed and shown."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_created(text: str) -> datetime | None:
    """``created`` as an aware datetime, or ``None`` when absent or malformed.

    Go writes up to nine fractional digits; Python reads six, so the rest is dropped.
    """
    if not text:
        return None
    cleaned = _FRACTION.sub(r"\1", text.strip())
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def since(created: str, now: datetime | None = None) -> str:
    """How long ago, as docker prints it (``3 days ago``); ``N/A`` when unknown."""
    when = parse_created(created)
    if when is None:
        return "N/A"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 1:
        return "Less than a second ago"
    for unit, size in (
        ("year", 365 * 86400),
        ("month", 30 * 86400),
        ("week", 7 * 86400),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ):
        if seconds >= size:
            n = seconds // size
            if n == 1:
                article = "An" if unit == "hour" else "A"
                return f"{article} {unit} ago" if unit != "second" else "1 second ago"
            return f"{n} {unit}s ago"
    return "N/A"  # pragma: no cover - the loop always returns


def human_size(size: int) -> str:
    """A byte count in decimal units, as docker prints it (``4.26MB``)."""
    if size < 1000:
        return f"{size}B"
    value = size / 1000
    for unit in ("kB", "MB", "GB", "TB"):
        # 999.96 would print as "1e+03" with three significant digits: carry it over.
        if value < 999.5 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"  # pragma: no cover - the loop always returns
