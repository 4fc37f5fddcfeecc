"""Build small, real OCI images straight into a Store, without the build or archive code.

Reusable by any test: ``make_image(store, "app:1", files={"hello.txt": b"hi"})``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping

from envkit.oci.types import (
    MT_OCI_CONFIG,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
)
from envkit.store.store import Store


def make_layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed, deterministic layer tar holding ``files`` (path -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """``data`` gzip-compressed deterministically (no name, mtime 0)."""
    return gzip.compress(data, mtime=0)


def make_image(
    store: Store,
    ref: str | None = None,
    *,
    files: Mapping[str, bytes] | None = None,
    layers: int = 1,
    created: str = "2024-01-01T00:00:00Z",
    cmd: list[str] | None = None,
) -> Descriptor:
    """Write a config, ``layers`` gzip layers and a manifest; tag ``ref`` when given.

    Each layer holds ``files`` plus a marker file naming its index, so images built with
    different arguments have different digests. Returns the manifest descriptor.
    """
    layer_descs: list[Descriptor] = []
    diff_ids: list[str] = []
    for i in range(layers):
        content = dict(files or {})
        content[f"layer-{i}.txt"] = f"layer {i} of {ref or 'image'} {created}".encode()
        tar = make_layer_tar(content)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        blob = store.write_blob(gzip_bytes(tar))
        layer_descs.append(blob.replace(media_type=MT_OCI_LAYER_GZIP))
    config = ImageConfig(
        raw={
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {"Cmd": cmd or ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": "store_helpers"}] * layers,
        }
    )
    config_desc = store.write_blob(config.to_bytes()).replace(media_type=MT_OCI_CONFIG)
    manifest = Manifest(config=config_desc, layers=tuple(layer_descs))
    desc = store.put_manifest(manifest.to_bytes(), MT_OCI_MANIFEST)
    if ref is not None:
        store.tag(ref, desc)
    return desc
