#!/usr/bin/env bash
# Run a command as an unprivileged user with subordinate id ranges (made if missing),
# from a copy of the repository with its own venv: root's home is 0700, so the user
# could not read this checkout. The command runs in the copy, with the copy's venv first
# on PATH (`python` is the venv's). Example:
#   bash scripts/as-rootless-user.sh python -m tests.benchmarks.bench_run
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "as-rootless-user: run as root (it creates the user)"; exit 2; }
[ $# -gt 0 ] || { echo "usage: as-rootless-user.sh COMMAND [ARG...]"; exit 2; }

USER_NAME=${ENVKIT_TEST_USER:-envkit-ci}
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$USER_NAME"
fi
grep -q "^$USER_NAME:" /etc/subuid 2>/dev/null \
    || usermod --add-subuids 200000-265535 "$USER_NAME"
grep -q "^$USER_NAME:" /etc/subgid 2>/dev/null \
    || usermod --add-subgids 200000-265535 "$USER_NAME"

work=$(mktemp -d /tmp/envkit-rootless.XXXXXX)
cleanup() {
    # Files made inside user namespaces may belong to subordinate ids: remove as root.
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/src"
tar --exclude=./.venv --exclude=./.nox --exclude='*/__pycache__' --exclude=./.hypothesis \
    --exclude=./.mypy_cache --exclude=./.pytest_cache --exclude=./build -cf - . \
    | tar -xf - -C "$work/src"
/usr/bin/python3 -m venv "$work/venv"
# compat mode, as scripts/bootstrap.sh: no import hook on every start-up.
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check -e "$work/src[dev]" \
    --config-settings editable_mode=compat
"$work/venv/bin/python" -m compileall -q "$work/src/envkit"
chown -R "$USER_NAME:" "$work"
chmod 0755 "$work"

echo "== as unprivileged user $USER_NAME ($(grep "^$USER_NAME:" /etc/subuid)): $*"
cd "$work/src"
runuser -u "$USER_NAME" -- env -i HOME="/home/$USER_NAME" \
    PATH="$work/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin" LANG=C.UTF-8 "$@"
