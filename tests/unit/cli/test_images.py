"""``envkit images``, ``inspect``, ``tag``, ``rmi``, ``prune`` and ``fsck``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.store.store import Store
from tests.unit.store_helpers import make_image


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store.default()


def _out(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> str:
    assert main(argv) == code
    return capsys.readouterr().out


def test_images_table(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    desc = make_image(store, "busybox", created="2024-01-01T00:00:00Z")
    make_image(store, "localhost:5000/me/app:1.0", created="2024-05-01T00:00:00Z")
    image_id = store.manifest(desc).config.digest[7:19]
    lines = _out(capsys, ["images"]).splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:2] == ["localhost:5000/me/app", "1.0"]
    assert lines[2].split()[:3] == ["busybox", "latest", image_id]
    assert lines[2].endswith("B")


def test_images_digests_quiet_json_and_filter(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    desc = make_image(store, "busybox")
    store.tag("busybox:other", desc)
    make_image(store, "app")
    assert desc.digest in _out(capsys, ["images", "--digests"])
    config = store.manifest(desc).config.digest
    quiet = _out(capsys, ["images", "-q"]).split()
    assert quiet.count(config[7:19]) == 1 and len(quiet) == 2
    rows = [json.loads(line) for line in _out(capsys, ["images", "--format", "json"]).splitlines()]
    assert {(r["Repository"], r["Tag"]) for r in rows} == {
        ("busybox", "latest"),
        ("busybox", "other"),
        ("app", "latest"),
    }
    assert all(r["Digest"].startswith("sha256:") and r["SizeBytes"] > 0 for r in rows)
    only = _out(capsys, ["images", "busybox:other"]).splitlines()
    assert len(only) == 2 and only[1].split()[:2] == ["busybox", "other"]
    assert config in _out(capsys, ["images", "-q", "--no-trunc"])


def test_inspect_json(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    desc = make_image(store, "app:1", layers=2, cmd=["/bin/true"])
    store.tag("registry.example.org/app:2", desc)
    [doc] = json.loads(_out(capsys, ["inspect", "app:1"]))
    manifest = store.manifest(desc)
    assert doc["Id"] == manifest.config.digest
    assert doc["Manifest"]["Digest"] == desc.digest
    assert doc["RepoTags"] == ["app:1", "registry.example.org/app:2"]
    assert f"app@{desc.digest}" in doc["RepoDigests"]
    assert doc["Config"] == {"Cmd": ["/bin/true"]}
    assert [layer["Digest"] for layer in doc["Layers"]] == [d.digest for d in manifest.layers]
    assert doc["RootFS"]["Layers"] == store.config(manifest).diff_ids


def test_tag_and_rmi(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    desc = make_image(store, "app")
    assert _out(capsys, ["tag", "app", "mine:2"]) == ""
    assert store.resolve("mine:2") == desc
    assert _out(capsys, ["rmi", "app"]) == "Untagged: app:latest\n"
    out = _out(capsys, ["rmi", "mine:2"])
    assert out.splitlines()[0] == "Untagged: mine:2"
    assert f"Deleted: {desc.digest}" in out
    assert list(store.blobs()) == []


def test_rmi_checks_every_name_first(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(store, "app")
    assert main(["rmi", "app", "ghost"]) == 2
    err = capsys.readouterr().err
    assert "'ghost'" in err and "Traceback" not in err
    assert "docker.io/library/app:latest" in store.refs()


@pytest.mark.parametrize(
    "argv",
    [["inspect", "ghost"], ["tag", "ghost", "x"], ["tag", "app", "Bad Name"], ["rmi", "Bad Name"]],
)
def test_bad_input_is_one_message_exit_2(
    store: Store, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    make_image(store, "app")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("envkit: error:") and "Traceback" not in err


def test_prune_prints_what_was_freed(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(store, "kept")
    loose = store.write_blob(b"x" * 2000)
    out = _out(capsys, ["prune"])
    assert f"Deleted: {loose.digest}" in out
    assert "Total reclaimed space: 2kB" in out
    assert _out(capsys, ["prune"]).strip() == "Total reclaimed space: 0B"


def test_fsck_truncated_blob_then_repair(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    desc = make_image(store, "app")
    layer = store.manifest(desc).layers[0].digest
    path = store.blob_path(layer)
    path.write_bytes(path.read_bytes()[:-5])
    out = _out(capsys, ["fsck"], code=1)
    assert f"corrupt blob {layer}" in out and "broken ref docker.io/library/app:latest" in out
    out = _out(capsys, ["fsck", "--repair"])
    assert f"repaired: removed corrupt blob {layer}" in out
    assert "repaired: removed ref docker.io/library/app:latest" in out
    assert "ok (repaired)" in out
    assert _out(capsys, ["fsck"]).strip().endswith(": ok")
