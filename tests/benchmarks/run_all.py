"""Run every tests/benchmarks/bench_*.py and print one table (``nox -s bench``)."""

from __future__ import annotations

import importlib
import pathlib
import sys

from tests.benchmarks.common import Result, podman_pause_cleanup, table


def main(argv: list[str]) -> int:
    here = pathlib.Path(__file__).parent
    wanted = set(argv)
    results: list[Result] = []
    with podman_pause_cleanup():
        for path in sorted(here.glob("bench_*.py")):
            if wanted and path.stem not in wanted:
                continue
            module = importlib.import_module(f"tests.benchmarks.{path.stem}")
            print(f"== {path.stem}", flush=True)
            results.extend(module.main())
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
