"""Run every tests/benchmarks/bench_*.py and print one table (``nox -s bench``).

Each benchmark module runs in a fresh interpreter: envkit's runtime forks the calling
process, and after the Debian bootstrap (a 63k-package index in memory) or the registry
benchmark a shared process is large enough that its forks alone tripled the runtime's
figures. One process per module keeps each figure what a user would see.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile

from tests.benchmarks.common import Result, podman_pause_cleanup, table

_CHILD = """
import dataclasses, importlib, json, sys
module = importlib.import_module(sys.argv[1])
with open(sys.argv[2], "w") as out:
    json.dump([dataclasses.asdict(r) for r in module.main()], out)
"""


def run_module(stem: str) -> list[Result]:
    """``tests.benchmarks.<stem>.main()`` in a fresh interpreter; its results."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, "-c", _CHILD, f"tests.benchmarks.{stem}", out.name], check=True
        )
        return [Result(**fields) for fields in json.loads(pathlib.Path(out.name).read_text())]


def main(argv: list[str]) -> int:
    here = pathlib.Path(__file__).parent
    wanted = set(argv)
    results: list[Result] = []
    with podman_pause_cleanup():
        for path in sorted(here.glob("bench_*.py")):
            if wanted and path.stem not in wanted:
                continue
            print(f"== {path.stem}", flush=True)
            try:
                results.extend(run_module(path.stem))
            except subprocess.CalledProcessError:  # its traceback is above; keep the rest
                results.append(Result(f"{path.stem}: FAILED (see its output above)", 0.0))
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
