"""Debian version numbers: ``[epoch:]upstream[-revision]``, compared as dpkg does.

See deb-version(7): letters sort before non-letters, ``~`` before everything (even the
end of the string), digit runs compare numerically.
"""

from __future__ import annotations

import re
from functools import cmp_to_key

_DIGITS = re.compile(r"\d*")
_NON_DIGITS = re.compile(r"\D*")


def _split(version: str) -> tuple[int, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    return int(epoch or "0"), upstream, revision


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        na = _NON_DIGITS.match(a, i)
        nb = _NON_DIGITS.match(b, j)
        sa = na.group() if na else ""
        sb = nb.group() if nb else ""
        i += len(sa)
        j += len(sb)
        for k in range(max(len(sa), len(sb))):
            ca = _order(sa[k]) if k < len(sa) else 0
            cb = _order(sb[k]) if k < len(sb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        da = _DIGITS.match(a, i)
        db = _DIGITS.match(b, j)
        xa = da.group() if da else ""
        xb = db.group() if db else ""
        i += len(xa)
        j += len(xb)
        ia, ib = int(xa or "0"), int(xb or "0")
        if ia != ib:
            return -1 if ia < ib else 1
    return 0


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether ``version`` meets the relation ``op wanted`` (``>=``, ``<<``, ``=``...)."""
    c = compare(version, wanted)
    if op == "=":
        return c == 0
    if op in (">=", ">"):  # ">" is the obsolete spelling of ">="
        return c >= 0
    if op in ("<=", "<"):
        return c <= 0
    if op == ">>":
        return c > 0
    if op == "<<":
        return c < 0
    raise ValueError(f"unknown version relation {op!r}")


version_key = cmp_to_key(compare)
