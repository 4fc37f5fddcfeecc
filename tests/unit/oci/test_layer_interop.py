"""Layers written by envkit are read by umoci (digests and diff_ids verified) like by envkit."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from envkit.oci.layer_writer import Compression, write_layer
from envkit.oci.types import (
    ANNOTATION_REF_NAME,
    MT_OCI_CONFIG,
    MT_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
)
from tests.unit.oci.test_layer_roundtrip import describe, make_tree

pytestmark = [
    pytest.mark.peers,
    pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed"),
]


def _put(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest


# umoci 0.4 (Debian 12) predates zstd layers.
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_umoci_unpacks_an_envkit_layer_to_the_same_tree(
    tmp_path: Path, compression: Compression
) -> None:
    src, layout, bundle = tmp_path / "src", tmp_path / "layout", tmp_path / "bundle"
    src.mkdir()
    make_tree(src)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    out = io.BytesIO()
    info = write_layer(src, out, compression=compression)
    assert _put(layout, out.getvalue()) == info.digest
    config = ImageConfig.empty()
    config.raw["rootfs"]["diff_ids"] = [info.diff_id]
    raw_config = config.to_bytes()
    manifest = Manifest(
        config=Descriptor(MT_OCI_CONFIG, _put(layout, raw_config), len(raw_config)),
        layers=(info.descriptor(),),
    ).to_bytes()
    index = Index(
        manifests=(
            Descriptor(
                MT_OCI_MANIFEST,
                _put(layout, manifest),
                len(manifest),
                annotations={ANNOTATION_REF_NAME: "test"},
            ),
        )
    )
    (layout / "index.json").write_bytes(index.to_bytes())
    subprocess.run(
        ["umoci", "raw", "unpack", "--rootless", "--image", f"{layout}:test", str(bundle)],
        check=True,
        capture_output=True,
    )
    assert describe(bundle) == describe(src)
