#!/usr/bin/env bash
# The README's first command runs this after scripts/bootstrap.sh: a busybox image made
# from the host's busybox-static (no registry needed), then the web-and-client stack up,
# checked from the host, and down again. Uses a private ENVKIT_HOME, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The project's venv (scripts/bootstrap.sh), else whatever envkit is on PATH.
if [ -x "$root/.venv/bin/envkit" ]; then PATH="$root/.venv/bin:$PATH"; fi
work=$(mktemp -d /tmp/envkit-quickstart.XXXXXX)
export ENVKIT_HOME="$work/home"
cleanup() {
    (cd "$root/examples/web-and-client" && envkit down -v >/dev/null 2>&1) || true
    # Rootless, image files of other container users belong to subordinate ids: they are
    # removed as container root (as `podman unshare rm` does). Root removes them itself.
    if [ "$(id -u)" != 0 ]; then envkit unshare rm -rf "$work" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== envkit doctor"
envkit doctor || true
echo "== busybox:1 from /bin/busybox (envkit's deterministic layer writer, then envkit load)"
python "$root/examples/busybox-roundtrip/make_layout.py" "$work/layout" busybox:1 >/dev/null
tar -C "$work/layout" -cf "$work/busybox.tar" .
envkit load -i "$work/busybox.tar"
envkit images
echo "== envkit up -d (examples/web-and-client)"
cd "$root/examples/web-and-client"
DEMO_TOKEN=s3cret envkit up -d
envkit stack ps
port=$(envkit stack port web 8080 | sed 's/.*://')
echo "== GET http://127.0.0.1:$port/ from the host"
python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())" "http://127.0.0.1:$port/"
sleep 1
envkit stack logs client
echo "== envkit down -v"
envkit down -v
echo "quickstart OK"
