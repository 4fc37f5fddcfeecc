#!/usr/bin/env bash
# Round trip of a busybox-static image: skopeo makes an OCI archive, envkit loads it, lists
# it and saves it again, podman loads envkit's archive, and the digests must all agree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PATH="$root/.venv/bin:$PATH"
work=$(mktemp -d /tmp/envkit-example.XXXXXX)
cleanup() {
    # Rootless, podman's store holds files of subordinate ids: removed as its container root.
    if [ "$(id -u)" != 0 ]; then podman unshare rm -rf "$work/podman" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
export ENVKIT_HOME="$work/home"

echo "== envkit doctor"; envkit doctor || true
echo "== an OCI layout of /bin/busybox, written by envkit's layer writer"
python "$here/make_layout.py" "$work/layout" 1
echo "== skopeo makes the OCI archive"
skopeo copy -q "oci:$work/layout:1" "oci-archive:$work/busybox.tar:busybox:1"
echo "== envkit load / images / save"
envkit load -i "$work/busybox.tar"
envkit images
envkit save busybox:1 -o "$work/saved.tar"
echo "== podman loads envkit's archive (private storage under $work)"
podman_() { podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs "$@"; }
podman_ load -q -i "$work/saved.tar"
in_digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$work/busybox.tar")
out_digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$work/saved.tar")
envkit_id=$(envkit images -q --no-trunc busybox:1)
podman_id=$(podman_ image inspect --format '{{.Id}}' busybox:1)
echo "manifest digest: skopeo's archive $in_digest, envkit's archive $out_digest"
echo "image id:        envkit $envkit_id, podman ${podman_id}"
[ "$in_digest" = "$out_digest" ] && [ "${envkit_id#sha256:}" = "${podman_id#sha256:}" ]
echo "round trip OK: identical digests"
