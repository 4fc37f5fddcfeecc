"""Saving images as OCI and docker archives: readable, deterministic, atomic."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.errors import ArchiveError, ImageNotFoundError
from envkit.oci.archive_read import load_archive
from envkit.oci.archive_write import save_archive
from envkit.store.store import Store
from tests.images import build_archive, sha256, small_layers


def _load(tmp_path: Path, store: Store, ref: str = "busybox:1", compression: str = "gzip") -> str:
    archive = tmp_path / f"src-{compression}.tar"
    built = build_archive(archive, small_layers(), ref=ref, compression=compression)
    load_archive(archive, store)
    return built.manifest_digest


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: _read(tar, m) for m in tar.getmembers() if m.isfile()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    data = tar.extractfile(member)
    assert data is not None, member.name
    return data.read()


def test_oci_archive_round_trips_with_the_same_digests(tmp_path: Path, store: Store) -> None:
    digest = _load(tmp_path, store)
    out = tmp_path / "out.tar"
    [saved] = save_archive(store, ["busybox:1"], out)
    assert saved.ref == "docker.io/library/busybox:1"
    files = _members(out)
    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    assert entry["digest"] == digest
    assert entry["annotations"] == {
        "org.opencontainers.image.ref.name": "docker.io/library/busybox:1",
        "io.containerd.image.name": "docker.io/library/busybox:1",
    }
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1]
    other = Store(tmp_path / "other")
    [loaded] = load_archive(out, other)
    assert loaded.manifest.digest == digest
    assert loaded.refs == ("docker.io/library/busybox:1",)


def test_output_is_deterministic(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(tmp_path, store)
    save_archive(store, ["busybox:1"], tmp_path / "a.tar")
    save_archive(store, ["busybox:1"], tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid) for m in members} == {(0, 0, 0)}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    save_archive(store, ["busybox:1"], tmp_path / "c.tar")
    with tarfile.open(tmp_path / "c.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


def test_image_saved_by_id_has_no_name(tmp_path: Path, store: Store) -> None:
    digest = _load(tmp_path, store)
    image_id = store.config(store.manifest(digest)).digest.split(":")[1][:12]
    [saved] = save_archive(store, [image_id], tmp_path / "out.tar")
    assert saved.ref == ""
    [entry] = json.loads(_members(tmp_path / "out.tar")["index.json"])["manifests"]
    assert entry["digest"] == digest
    assert "annotations" not in entry


def test_several_images_share_blobs(tmp_path: Path, store: Store) -> None:
    first = _load(tmp_path, store, ref="one:1", compression="gzip")
    second = _load(tmp_path, store, ref="two:1", compression="zstd")
    store.tag("one:alias", store.resolve("one:1"))
    save_archive(store, ["one:1", "two:1", "one:alias"], tmp_path / "out.tar")
    files = _members(tmp_path / "out.tar")
    entries = json.loads(files["index.json"])["manifests"]
    assert [e["digest"] for e in entries] == [first, second, first]
    # One config (same image content), two layer encodings of two layers, two manifests.
    assert len([n for n in files if n.startswith("blobs/")]) == 1 + 4 + 2
    other = Store(tmp_path / "other")
    loaded = load_archive(tmp_path / "out.tar", other)
    assert sorted(other.refs()) == [
        "docker.io/library/one:1",
        "docker.io/library/one:alias",
        "docker.io/library/two:1",
    ]
    assert len(loaded) == 2


@pytest.mark.parametrize("compression", ["gzip", "zstd", ""])
def test_docker_archive_has_uncompressed_layers_matching_diff_ids(
    tmp_path: Path, store: Store, compression: str
) -> None:
    digest = _load(tmp_path, store, compression=compression)
    out = tmp_path / "docker.tar"
    save_archive(store, ["busybox:1"], out, format="docker-archive")
    files = _members(out)
    [entry] = json.loads(files["manifest.json"])
    config = json.loads(files[entry["Config"]])
    image_id = store.manifest(digest).config.digest
    assert entry["Config"] == image_id.split(":")[1] + ".json"
    assert entry["RepoTags"] == ["docker.io/library/busybox:1"]
    diff_ids = [sha256(files[name]) for name in entry["Layers"]]
    assert diff_ids == config["rootfs"]["diff_ids"]
    for name in entry["Layers"]:
        with tarfile.open(fileobj=io.BytesIO(files[name]), mode="r:") as layer:
            assert layer.getnames()  # an uncompressed tar
    [loaded] = load_archive(out, Store(tmp_path / "other"))
    assert loaded.config_digest == image_id


def test_unknown_image_leaves_no_file(tmp_path: Path, store: Store) -> None:
    _load(tmp_path, store)
    out = tmp_path / "out.tar"
    with pytest.raises(ImageNotFoundError):
        save_archive(store, ["busybox:1", "nothere:1"], out)
    assert not out.exists()
    assert list(tmp_path.glob(".out.tar.*")) == []


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_corrupt_store_blob_fails_the_save_atomically(
    tmp_path: Path, store: Store, fmt: str
) -> None:
    digest = _load(tmp_path, store)
    layer = store.manifest(digest).layers[1]
    path = store.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    out = tmp_path / "out.tar"
    out.write_bytes(b"previous content")
    with pytest.raises(ArchiveError, match=layer.digest):
        save_archive(store, ["busybox:1"], out, format=fmt)
    assert out.read_bytes() == b"previous content"
    assert list(tmp_path.glob(".out.tar.*")) == []


def test_unknown_format_is_refused(tmp_path: Path, store: Store) -> None:
    with pytest.raises(ArchiveError, match="unknown archive format 'zip'"):
        save_archive(store, ["x"], tmp_path / "out.zip", format="zip")


def test_cli_save_then_load(
    tmp_path: Path, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "src.tar"
    built = build_archive(archive, small_layers(), ref="me/app:1")
    assert main(["load", str(archive)]) == 0
    out = tmp_path / "saved.tar"
    assert main(["save", "me/app:1", "-o", str(out), "--format", "docker-archive"]) == 0
    assert json.loads(_members(out)["manifest.json"])[0]["Config"].startswith(
        built.config_digest.split(":")[1]
    )
    assert main(["save", "nope:1", "-o", str(tmp_path / "x.tar")]) == 2
    assert "no image 'nope:1'" in capsys.readouterr().err
    assert not (tmp_path / "x.tar").exists()
