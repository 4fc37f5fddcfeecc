#!/usr/bin/env bash
# Run the benchmarks as an unprivileged user, so envkit and podman are both rootless
# (the comparison the issues ask for). Arguments: benchmark module names (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/as-rootless-user.sh python -m tests.benchmarks.run_all "$@"
