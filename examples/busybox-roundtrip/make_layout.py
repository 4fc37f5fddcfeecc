"""Make an OCI image layout of a busybox-static root filesystem, with envkit's layer writer.

Usage: python make_layout.py OUT_DIR [TAG]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from envkit.plugins import (
    ANNOTATION_REF_NAME,
    MT_OCI_CONFIG,
    MT_OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    canonical_json,
    sha256_bytes,
    write_layer,
)

APPLETS = [
    "sh",
    "ls",
    "cat",
    "echo",
    "env",
    "id",
    "hostname",
    "ps",
    "true",
    "false",
    "sleep",
    "wget",
    "test",
    "mkdir",
    "touch",
    "rm",
    "wc",
    "grep",
    "sed",
    "uname",
    "nc",
    "timeout",
]


def rootfs(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    for d in ("tmp", "root", "proc", "sys", "dev"):
        (root / d).mkdir()


def put(layout: Path, data: bytes) -> str:
    digest = sha256_bytes(data)
    (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return digest


def main(out: Path, tag: str) -> None:
    (out / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    with tempfile.TemporaryDirectory() as tmp:
        rootfs(Path(tmp) / "rootfs")
        layer_path = Path(tmp) / "layer"
        with layer_path.open("wb") as f:
            layer = write_layer(Path(tmp) / "rootfs", f, compression="gzip", source_date_epoch=0)
        data = layer_path.read_bytes()
    put(out, data)
    config = canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
    )
    config_desc = Descriptor(MT_OCI_CONFIG, put(out, config), len(config))
    manifest = Manifest(config=config_desc, layers=(layer.descriptor(),)).to_bytes()
    desc = Descriptor(
        MT_OCI_MANIFEST, put(out, manifest), len(manifest), annotations={ANNOTATION_REF_NAME: tag}
    )
    (out / "index.json").write_bytes(Index(manifests=(desc,)).to_bytes())
    print(json.dumps({"manifest": desc.digest, "config": config_desc.digest}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "latest")
