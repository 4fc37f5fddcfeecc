"""A ``rootfs-dir`` image source: an image whose only layer is a host directory.

``params``: ``{"path": "/abs/rootfs"}`` and optionally ``"cmd": [...]``. The layer is
written deterministically (same tree, same digest), so providing the same directory twice
gives the same image. Exercises the image source hook.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envkit.errors import EnvkitError
from envkit.plugins import ImageSource, hookimpl

if TYPE_CHECKING:
    from envkit.plugins import Descriptor, Store


class RootfsDirSource:
    """An image from a directory on the host."""

    kind = "rootfs-dir"

    def provide(self, params: Mapping[str, Any], store: Store) -> Descriptor:
        from envkit.plugins import (
            MT_OCI_CONFIG,
            Manifest,
            canonical_json,
            host_platform,
            write_layer,
        )

        path = Path(str(params.get("path", "")))
        if not path.is_absolute() or not path.is_dir():
            raise EnvkitError(
                f"rootfs-dir: {path} is not an absolute path to a directory",
                hint='give params {"path": "/abs/dir"}',
            )
        with store.shared(), tempfile.TemporaryFile(dir=store.tmp_dir) as tmp:
            info = write_layer(path, tmp, compression="gzip")
            tmp.seek(0)
            store.ingest(tmp, info.digest, info.size)
            platform = host_platform()
            config = {
                "architecture": platform.architecture,
                "os": platform.os,
                "config": {"Cmd": list(params.get("cmd") or ["/bin/sh"])},
                "rootfs": {"type": "layers", "diff_ids": [info.diff_id]},
            }
            config_desc = store.write_blob(canonical_json(config)).replace(media_type=MT_OCI_CONFIG)
            manifest = Manifest(config_desc, (info.descriptor(),))
            desc = store.put_manifest(manifest.to_bytes(), manifest.media_type)
            store.keep(desc)  # not named: prune must still spare it while it is used
        return desc


@hookimpl
def envkit_image_sources() -> Sequence[ImageSource]:
    return [RootfsDirSource()]
