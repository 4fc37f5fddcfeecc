"""``envkit config``: load a stack file and print its resolved form (``docker compose config``).

For a stack.py the output is the Stack's canonical form (every default filled in, the
default network added, volumes and secrets collected) plus ``base_dir``, the directory
relative paths are resolved against. For a compose file (``.yaml``/``.yml``, or the
compose file found when no FILE is given and there is no stack.py) it is compose's
normalised form of what envkit understood, as ``docker compose config`` prints it.
``--compose`` prints a stack.py in that form too, ``--canonical`` a compose file in
envkit's form. YAML by default, JSON with ``--format json``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from envkit.plugins.interfaces import Command

# Strings YAML 1.1 or 1.2 readers would take for something else (booleans, null).
_RESERVED = frozenset(
    [
        "y",
        "yes",
        "n",
        "no",
        "true",
        "false",
        "on",
        "off",
        "null",
        "~",
        ".inf",
        "-.inf",
        "+.inf",
        ".nan",
    ]
)
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_PLAIN_RE = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./@+-]*$")


class ConfigCommand:
    """Print the resolved stack, or one error naming the file and line."""

    name = "config"
    help = "load a stack file and print its resolved form"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from envkit.cli.stack_cmds import add_file_arguments, add_profile_option

        add_file_arguments(parser, "show")
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml")
        add_profile_option(parser)
        form = parser.add_mutually_exclusive_group()
        form.add_argument(
            "--compose",
            action="store_true",
            help="compose's normalised form (the default for a compose file)",
        )
        form.add_argument(
            "--canonical",
            action="store_true",
            help="envkit's canonical form of the Stack (the default for a stack.py)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.cli.stack_cmds import DEFAULT_FILE, default_files, load_file
        from envkit.compose.loader import is_compose_file

        named = [args.file_option, *(getattr(args, "more_files", None) or []), args.file]
        if any(named):
            paths = [Path(f) for f in named if f]
        else:
            paths = default_files() or [Path(DEFAULT_FILE)]
        path, more = paths[0], paths[1:]
        compose_form = args.compose or (is_compose_file(path) and not args.canonical)
        data: dict[str, Any]
        if compose_form and is_compose_file(path):
            from envkit.compose.loader import load
            from envkit.compose.normalise import project_to_compose

            project = load(paths, profiles=args.profile or None)
            for warning in project.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            data = project_to_compose(project)
        elif compose_form:
            from envkit.compose.normalise import stack_to_compose

            data = stack_to_compose(load_file(path, args.stack, args.profile, more=more))
        else:
            stack = load_file(path, args.stack, args.profile, more=more)
            data = {"base_dir": str(stack.base_dir), **stack.canonical()}
        if args.format == "json":
            print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        else:
            print(to_yaml(data), end="")
        return 0


def to_yaml(data: Any) -> str:
    """Plain JSON-like data (dict, list, str, int, float, bool, None) as block YAML.

    Mappings keep their key order. Strings are quoted (JSON-style double quotes, valid
    YAML) whenever a plain scalar could be read as anything else.
    """
    lines: list[str] = []
    _emit(data, 0, lines)
    return "".join(line + "\n" for line in lines)


def _emit(data: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(data, dict) and data:
        for key, value in data.items():
            head = f"{pad}{_scalar(str(key))}:"
            if _is_block(value):
                lines.append(head)
                _emit(value, indent + 2, lines)
            else:
                lines.append(f"{head} {_scalar(value)}")
    elif isinstance(data, list) and data:
        for item in data:
            if _is_block(item):
                start = len(lines)
                _emit(item, indent + 2, lines)
                # The first line of the nested block goes on the dash's line.
                lines[start] = f"{pad}- {lines[start][indent + 2 :]}"
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(data))


def _is_block(value: Any) -> bool:
    return isinstance(value, dict | list) and bool(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 readers (PyYAML) take "1e+300" for a string; "1.0e+300" for a float.
        if "e" in text and "." not in text:
            text = text.replace("e", ".0e", 1)
        return text
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    text = str(value)
    if _PLAIN_RE.match(text) and text.lower() not in _RESERVED and not _numeric(text):
        return text
    return _quote(text)


def _numeric(text: str) -> bool:
    try:
        float(text.replace("_", ""))
    except ValueError:
        return False
    return True


def _quote(text: str) -> str:
    """A YAML double-quoted scalar: printable characters as is, the rest escaped."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _printable(code):
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    out.append('"')
    return "".join(out)


def _printable(code: int) -> bool:
    """YAML's printable set (c-printable), minus the byte-order mark."""
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ) and code != 0xFEFF


COMMANDS: list[Command] = [ConfigCommand()]
