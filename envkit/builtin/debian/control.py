"""Debian control data (deb822): paragraphs of ``Field: value`` lines.

Release files, Packages indexes, a .deb's ``control`` file and dpkg's status database
all use it. Continuation lines start with a space or a tab; a line holding only ``.``
stands for an empty line inside a multi-line value.
"""

from __future__ import annotations

from collections.abc import Iterator


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of ``text`` in order; fields keep their spelling, multi-line
    values keep their continuation lines (without the leading space)."""
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                yield current
                current, last = {}, ""
            continue
        if line[0] in " \t":
            if last:
                current[last] += "\n" + line[1:]
            continue
        if line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip()
        current[last] = value.strip()
    if current:
        yield current


def multiline(value: str) -> list[str]:
    """The non-empty continuation lines of a multi-line value (``SHA256:``, ``Conffiles:``)."""
    return [line.strip() for line in value.splitlines()[1:] if line.strip()]
