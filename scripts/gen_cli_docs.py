"""Write docs/reference/cli.md from the registered commands' argparse help.

Run after changing a command: ``.venv/bin/python scripts/gen_cli_docs.py``.
tests/unit/test_docs.py fails when the file is out of date.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "reference" / "cli.md"


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix it for stable output
    from envkit.cli import build_parser
    from envkit.plugins.manager import PluginManager, reset_manager

    reset_manager(PluginManager(load_entry_points=False))
    try:
        parser = build_parser()
    finally:
        reset_manager()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# CLI reference\n",
        "Generated from the commands' own help by `scripts/gen_cli_docs.py`; "
        "do not edit by hand.\n",
        "Every command exits 0 on success, 2 on bad input (one `envkit: error:` line with a "
        "hint, no traceback; `ENVKIT_DEBUG=1` shows it), and 1 when the check it runs "
        "finds a problem (`fsck`, `doctor`, `plugins`).\n",
    ]
    for name, sp in sorted(sub.choices.items()):
        parts.append(f"## envkit {name}\n\n```\n{sp.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
