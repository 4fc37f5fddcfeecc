#!/usr/bin/env bash
# Run the test suite as an unprivileged user with subordinate id ranges (made if missing).
# Arguments go to pytest (default: the whole suite, without slow and peer tests).
# The code and a venv are copied to a world-readable temp dir: root's home is 0700.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test-rootless: run as root (it creates the test user)"; exit 2; }

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
    --exclude=./.mypy_cache --exclude=./.pytest_cache -cf - . | tar -xf - -C "$work/src"
/usr/bin/python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check -e "$work/src[dev]"
chown -R "$USER_NAME:" "$work"
chmod 0755 "$work"

args=("$@")
if [ ${#args[@]} -eq 0 ]; then args=(-m "not slow and not peers" tests); fi
echo "== pytest as unprivileged user $USER_NAME ($(grep "^$USER_NAME:" /etc/subuid))"
cd "$work/src"
runuser -u "$USER_NAME" -- env -i HOME="/home/$USER_NAME" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 "$work/venv/bin/python" -m pytest -p no:cacheprovider "${args[@]}"
