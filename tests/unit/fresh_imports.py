"""The start-up guards' one tool: which modules a fresh interpreter has loaded after
running some code (``envkit run``'s path, pull and push, networking)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def loaded_after(code: str, home: Path, modules: Iterable[str]) -> list[str]:
    """Those of ``modules`` loaded once ``code`` ran in a fresh interpreter (sorted),
    with ``ENVKIT_HOME=home`` and nothing else from this environment."""
    names = sorted(set(modules))
    script = f"import sys\n{code}\nprint([m for m in {names!r} if m in sys.modules])\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"ENVKIT_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    found: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return found
