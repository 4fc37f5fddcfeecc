"""Snapshots: layers extracted once, owners shifted for container root when root."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from envkit.oci.digest import sha256_bytes
from envkit.store import snapshots
from envkit.store.store import Store


def hardlink_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = b"shared content\n"
        info = tarfile.TarInfo("bin/tool")
        info.size, info.mode, info.uid, info.gid = len(data), 0o755, 0, 0
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bin/tool-alias")
        link.type, link.linkname, link.uid, link.gid = tarfile.LNKTYPE, "bin/tool", 0, 0
        tar.addfile(link)
    return buf.getvalue()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="owner shifting happens only when envkit runs as root"
)
def test_hardlinked_files_are_shifted_once(envkit_home: Path) -> None:
    from envkit.host import idmap

    store = Store.default()
    layer = hardlink_layer()
    desc = store.write_blob(layer)
    assert desc.digest == sha256_bytes(layer)
    snap = snapshots.prepare(store, [desc.digest], [sha256_bytes(layer)])
    root = Path(snap.layers[0])
    tool, alias = os.lstat(root / "bin/tool"), os.lstat(root / "bin/tool-alias")
    assert (tool.st_dev, tool.st_ino) == (alias.st_dev, alias.st_ino)
    assert tool.st_uid == idmap.plan().to_host_uid(0)
    assert (root / "bin/tool-alias").read_bytes() == b"shared content\n"
