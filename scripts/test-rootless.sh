#!/usr/bin/env bash
# Run the test suite as an unprivileged user with subordinate id ranges (made if missing).
# Arguments go to pytest (default: the whole suite, without slow and peer tests).
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
if [ ${#args[@]} -eq 0 ]; then args=(-m "not slow and not peers" tests); fi
exec bash scripts/as-rootless-user.sh python -m pytest -p no:cacheprovider "${args[@]}"
