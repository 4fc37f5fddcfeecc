"""The store is an OCI layout real peers read: skopeo finds images by their ref name."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from envkit.store.store import Store
from tests.unit.store_helpers import make_image

pytestmark = pytest.mark.peers

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def _skopeo(*args: str) -> str:
    done = subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True)
    return done.stdout


@needs_skopeo
def test_skopeo_inspects_by_normalised_ref(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc = make_image(store, "busybox", layers=2)
    make_image(store, "localhost:5000/me/app:1.0")
    info = json.loads(_skopeo("inspect", f"oci:{store.root}:docker.io/library/busybox:latest"))
    assert info["Digest"] == desc.digest
    assert info["Layers"] == [layer.digest for layer in store.manifest(desc).layers]
    raw = _skopeo("inspect", "--raw", f"oci:{store.root}:localhost:5000/me/app:1.0")
    assert (
        json.loads(raw)["config"]["digest"]
        == store.manifest(store.resolve("localhost:5000/me/app:1.0")).config.digest
    )


@needs_skopeo
def test_skopeo_copy_out_and_in(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc = make_image(store, "app:1")
    out = tmp_path / "copy"
    _skopeo("copy", f"oci:{store.root}:docker.io/library/app:1", f"oci:{out}:app")
    other = Store(out)
    assert other.resolve("app") == desc  # skopeo's short ref name, normalised on read
    assert other.fsck().ok
