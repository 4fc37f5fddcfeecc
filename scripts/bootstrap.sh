#!/usr/bin/env bash
# Set up a development machine: the host packages envkit's tests use (when root and
# apt-get is there), then .venv with envkit installed editable plus its dev tools.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST_PACKAGES=(uidmap busybox-static podman skopeo python3-venv util-linux iproute2 docker-registry apache2-utils openssl gpgv debian-archive-keyring)
# tini: `run --init` (tini-static); python3-seccomp: libseccomp, which compiles the
# seccomp filters (scripts/gen_seccomp.py, its test); gcc + libc6-dev: the static C
# attack probes of the hardening suite.
HOST_PACKAGES+=(tini python3-seccomp gcc libc6-dev)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for pkg in "${HOST_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bootstrap: installing ${missing[*]}"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
fi

# Debian's interpreter, not a pyenv shim: unprivileged test users must be able to run it.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# compat mode: a .pth entry instead of an import-hook finder, 15 ms less at every start.
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' \
    --config-settings editable_mode=compat
# Byte-compile envkit now: with PYTHONDONTWRITEBYTECODE set (some CI images set it) every
# command would otherwise recompile its modules, about 40 ms on each start.
.venv/bin/python -m compileall -q envkit >/dev/null
echo "bootstrap: ready (.venv/bin/envkit)"
