"""Text from containers and images, as the CLI prints it on a terminal.

A command line, a process's arguments or an image's ``Cmd`` are chosen by whoever made
the image or runs in the container; printed as they are, an escape sequence in them
would drive the caller's terminal (its title, its colours, some terminals' answer-back).
So tables show every non-printable character escaped, as docker and procps do.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

_NAMED = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quoted(text: str) -> str:
    """``text`` in double quotes as Go's ``strconv.Quote`` writes it (docker's ``ps``
    COMMAND column): ``"`` and ``\\`` escaped with a backslash, every non-printable
    character as ``\\a``..``\\v``, ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        elif char in _NAMED:
            out.append(_NAMED[char])
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def printable(text: str) -> str:
    """``text`` with each non-printable character shown as ``?``, as procps' ``ps``
    shows a process's arguments (docker's ``top``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


def table(rows: Sequence[Sequence[str]], gap: int = 3) -> None:
    """Print ``rows`` (the header first) in columns ``gap`` spaces apart, each cell
    through :func:`printable`."""
    cells = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        print((" " * gap).join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
