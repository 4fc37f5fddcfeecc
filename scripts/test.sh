#!/usr/bin/env bash
# The test command (README, .ci/run): lint, types, the test suite, and, when run as root,
# the suite again as an unprivileged user so the runtime is proven rootless.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

echo "== ruff";  .venv/bin/ruff check envkit tests plugins && .venv/bin/ruff format --check envkit tests plugins
echo "== mypy";  .venv/bin/mypy  # envkit, tests and plugins/envkit-oci-volumes (pyproject [tool.mypy] files)
echo "== pytest"
.venv/bin/python -m pytest -m "not slow" "$@"

if [ "$(id -u)" = 0 ]; then
    bash scripts/test-rootless.sh
fi
