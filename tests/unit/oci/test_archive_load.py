"""Loading OCI and docker archives into the store: digests kept, blobs verified, refs tagged."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from typing_extensions import Buffer

from envkit.cli import main
from envkit.errors import ArchiveError
from envkit.oci.archive_read import host_platform, load_archive
from envkit.oci.types import Platform
from envkit.store.store import Store
from tests import images
from tests.images import (
    MT_INDEX,
    MT_MANIFEST,
    build_archive,
    docker_archive,
    image_blobs,
    layer_tar,
    sha256,
    small_layers,
    tar_directory,
    write_layout,
)

AMD64 = Platform("linux", "amd64")


class _Pipe(io.RawIOBase):
    """A non-seekable stream, like stdin fed by a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer, /) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._data.read(min(len(view), 4096))
        view[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("archive_compression", ["", "gzip", "zstd"])
@pytest.mark.parametrize("layer_compression", ["gzip", "zstd", ""])
def test_oci_archive_loads_with_digests_kept(
    tmp_path: Path, store: Store, archive_compression: str, layer_compression: str
) -> None:
    archive = tmp_path / "img.tar"
    built = build_archive(
        archive,
        small_layers(),
        ref="busybox:1",
        compression=layer_compression,
        archive_compression=archive_compression,
    )
    [loaded] = load_archive(archive, store, platform=AMD64)
    assert loaded.manifest.digest == built.manifest_digest
    assert loaded.config_digest == built.config_digest
    assert loaded.refs == ("docker.io/library/busybox:1",)
    assert store.resolve("busybox:1").digest == built.manifest_digest
    manifest = store.manifest(built.manifest_digest)
    assert tuple(d.digest for d in manifest.layers) == built.layer_digests
    # Manifest bytes are kept as they were, byte for byte.
    assert sha256(store.read_blob(built.manifest_digest)) == built.manifest_digest


@pytest.mark.parametrize("kind", ["xz", "bzip2"])
def test_xz_and_bzip2_archives_load(tmp_path: Path, store: Store, kind: str) -> None:
    plain = tmp_path / "plain.tar"
    built = build_archive(plain, small_layers())
    packed = tmp_path / f"img.tar.{kind}"
    if kind == "xz":
        import lzma

        packed.write_bytes(lzma.compress(plain.read_bytes()))
    else:
        import bz2

        packed.write_bytes(bz2.compress(plain.read_bytes()))
    [loaded] = load_archive(packed, store)
    assert loaded.manifest.digest == built.manifest_digest


def test_loads_from_a_non_seekable_stream(tmp_path: Path, store: Store) -> None:
    archive = tmp_path / "img.tar"
    built = build_archive(archive, small_layers(), archive_compression="gzip")
    stream = io.BufferedReader(_Pipe(archive.read_bytes()))
    [loaded] = load_archive(stream, store)
    assert loaded.manifest.digest == built.manifest_digest


@pytest.mark.skipif(not images.have_busybox(), reason="busybox-static not installed")
def test_busybox_image_loads(tmp_path: Path, store: Store) -> None:
    archive = tmp_path / "busybox.tar"
    built = build_archive(archive)
    [loaded] = load_archive(archive, store)
    assert loaded.config_digest == built.config_digest
    assert [r.ref for r in store.images()] == ["docker.io/library/busybox:1"]


def test_containerd_name_wins_over_a_bare_tag(tmp_path: Path, store: Store) -> None:
    blobs, raw = image_blobs(small_layers())
    layout = tmp_path / "layout"
    notes = {
        "io.containerd.image.name": "docker.io/me/app:2",
        "org.opencontainers.image.ref.name": "2",
    }
    write_layout(layout, blobs, [(raw, MT_MANIFEST, notes)])
    tar_directory(layout, tmp_path / "img.tar")
    [loaded] = load_archive(tmp_path / "img.tar", store)
    assert loaded.refs == ("docker.io/me/app:2",)


def test_unnamed_image_reports_its_id(
    tmp_path: Path, store: Store, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blobs, raw = image_blobs(small_layers())
    write_layout(tmp_path / "layout", blobs, [(raw, MT_MANIFEST, {})])
    tar_directory(tmp_path / "layout", tmp_path / "img.tar")
    [loaded] = load_archive(tmp_path / "img.tar", store)
    assert loaded.refs == ()
    assert store.refs() == {}
    assert main(["load", str(tmp_path / "img.tar")]) == 0
    config = json.loads(raw)["config"]["digest"]
    assert capsys.readouterr().out == f"Loaded image ID: {config}\n"


def test_unnamed_image_survives_prune(tmp_path: Path, store: Store) -> None:
    blobs, raw = image_blobs(small_layers())
    write_layout(tmp_path / "layout", blobs, [(raw, MT_MANIFEST, {})])
    tar_directory(tmp_path / "layout", tmp_path / "img.tar")
    [loaded] = load_archive(tmp_path / "img.tar", store)
    assert store.prune().removed_blobs == []
    config = json.loads(raw)["config"]["digest"]
    assert store.resolve(config.split(":")[1][:12]).digest == loaded.manifest.digest
    assert [r.ref for r in store.images()] == [""]


def _multi_platform_layout(tmp_path: Path, nested: bool) -> tuple[Path, dict[str, str]]:
    blobs: dict[str, bytes] = {}
    children = []
    manifests = {}
    for arch in ("arm64", "amd64"):
        arch_blobs, raw = image_blobs(small_layers(), architecture=arch)
        blobs.update(arch_blobs)
        manifests[arch] = sha256(raw)
        children.append(
            {
                "mediaType": MT_MANIFEST,
                "digest": sha256(raw),
                "size": len(raw),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    index_raw = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": children})
    top = index_raw.encode()
    blobs[sha256(top)] = top
    if nested:
        outer = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MT_INDEX,
                "manifests": [{"mediaType": MT_INDEX, "digest": sha256(top), "size": len(top)}],
            }
        ).encode()
        blobs[sha256(outer)] = outer
        top = outer
    layout = tmp_path / "layout"
    write_layout(layout, blobs, [(top, MT_INDEX, {"org.opencontainers.image.ref.name": "multi:1"})])
    tar_directory(layout, tmp_path / "multi.tar")
    return tmp_path / "multi.tar", manifests


@pytest.mark.parametrize("nested", [False, True])
def test_index_picks_the_wanted_platform(tmp_path: Path, store: Store, nested: bool) -> None:
    archive, manifests = _multi_platform_layout(tmp_path, nested)
    [loaded] = load_archive(archive, store, platform=AMD64)
    assert loaded.manifest.digest == manifests["amd64"]
    assert store.resolve("multi:1").digest == manifests["amd64"]
    [arm] = load_archive(archive, Store(tmp_path / "other"), platform=Platform("linux", "arm64"))
    assert arm.manifest.digest == manifests["arm64"]


def test_index_without_the_platform_is_refused(tmp_path: Path, store: Store) -> None:
    archive, _ = _multi_platform_layout(tmp_path, nested=False)
    with pytest.raises(ArchiveError, match=r"no image for linux/s390x \(it has: linux/amd64"):
        load_archive(archive, store, platform=Platform("linux", "s390x"))
    assert store.refs() == {}


def test_host_platform_is_known() -> None:
    plat = host_platform()
    assert plat.os == "linux"
    assert plat.architecture in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}


@pytest.mark.parametrize("legacy_dirs", [False, True])
def test_docker_archive_keeps_the_image_id(tmp_path: Path, store: Store, legacy_dirs: bool) -> None:
    archive = tmp_path / "docker.tar"
    built = docker_archive(
        archive, small_layers(), repo_tags=("me/app:1", "me/app:latest"), legacy_dirs=legacy_dirs
    )
    [loaded] = load_archive(archive, store)
    assert loaded.config_digest == built.config_digest
    assert loaded.refs == ("docker.io/me/app:1", "docker.io/me/app:latest")
    manifest = store.manifest(loaded.manifest)
    assert manifest.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert [d.digest for d in manifest.layers] == list(built.diff_ids)
    # The built manifest is canonical: loading the same archive again gives the same digest.
    [again] = load_archive(archive, Store(tmp_path / "again"))
    assert again.manifest.digest == loaded.manifest.digest


def test_docker_archive_with_linked_layers(tmp_path: Path, store: Store) -> None:
    """podman writes `<id>/layer.tar` as a symlink to `<diff_id>.tar`."""
    archive = tmp_path / "docker.tar"
    built = docker_archive(archive, small_layers())
    first = built.diff_ids[0].split(":")[1] + ".tar"
    linked = tmp_path / "linked.tar"
    with tarfile.open(archive) as src, tarfile.open(linked, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            if member.name == "manifest.json":
                assert data is not None
                entries = json.loads(data.read())
                entries[0]["Layers"][0] = "legacy/layer.tar"
                raw = json.dumps(entries).encode()
                member.size = len(raw)
                data = io.BytesIO(raw)
            dst.addfile(member, data)
        link = tarfile.TarInfo("legacy/layer.tar")
        link.type = tarfile.SYMTYPE
        link.linkname = "../" + first
        dst.addfile(link)
    [loaded] = load_archive(linked, store)
    assert loaded.config_digest == built.config_digest


def _rewrite_member(archive: Path, out: Path, name: str, data: bytes) -> None:
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            content = src.extractfile(member) if member.isfile() else None
            if member.name == name:
                member.size = len(data)
                content = io.BytesIO(data)
            dst.addfile(member, content)


def test_corrupt_blob_is_refused_and_nothing_tagged(tmp_path: Path, store: Store) -> None:
    archive = tmp_path / "img.tar"
    built = build_archive(archive, small_layers())
    layer = "blobs/sha256/" + built.layer_digests[1].split(":")[1]
    with tarfile.open(archive) as tar:
        member = tar.extractfile(layer)
        assert member is not None
        original = member.read()
    bad = tmp_path / "bad.tar"
    _rewrite_member(archive, bad, layer, original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ArchiveError) as err:
        load_archive(bad, store)
    assert str(bad) in err.value.message
    assert layer in err.value.message
    assert store.refs() == {}
    assert not store.has_blob(built.layer_digests[1])


def test_truncated_archive_is_refused_and_nothing_tagged(tmp_path: Path, store: Store) -> None:
    archive = tmp_path / "img.tar"
    build_archive(archive, small_layers(), archive_compression="gzip")
    data = archive.read_bytes()
    for cut in (len(data) // 2, len(data) - 40, 30):
        short = tmp_path / f"short-{cut}.tar.gz"
        short.write_bytes(data[:cut])
        with pytest.raises(ArchiveError, match=str(short)):
            load_archive(short, store)
        assert store.refs() == {}
    # What was stored before the failure is unreferenced: prune frees all of it.
    store.prune()
    assert list(store.blobs()) == []
    assert store.fsck().ok


def test_missing_blob_is_refused(tmp_path: Path, store: Store) -> None:
    blobs, raw = image_blobs(small_layers())
    layer = json.loads(raw)["layers"][0]["digest"]
    del blobs[layer]
    write_layout(tmp_path / "layout", blobs, [(raw, MT_MANIFEST, {"x": "y"})])
    tar_directory(tmp_path / "layout", tmp_path / "img.tar")
    with pytest.raises(ArchiveError, match=f"blob {layer} .* is missing from the archive"):
        load_archive(tmp_path / "img.tar", store)


def test_docker_layer_not_matching_its_diff_id_is_refused(tmp_path: Path, store: Store) -> None:
    archive = tmp_path / "docker.tar"
    built = docker_archive(archive, small_layers())
    name = built.diff_ids[0].split(":")[1] + ".tar"
    bad = tmp_path / "bad.tar"
    _rewrite_member(archive, bad, name, layer_tar({"evil": b"x"}))
    with pytest.raises(ArchiveError, match=rf"layer {name} does not match its config"):
        load_archive(bad, store)
    assert store.refs() == {}


def test_docker_config_not_matching_its_name_is_refused(tmp_path: Path, store: Store) -> None:
    archive = tmp_path / "docker.tar"
    built = docker_archive(archive, small_layers())
    name = built.config_digest.split(":")[1] + ".json"
    bad = tmp_path / "bad.tar"
    _rewrite_member(archive, bad, name, b'{"rootfs":{"diff_ids":[]}}')
    with pytest.raises(ArchiveError, match=rf"image config {name} does not match its digest"):
        load_archive(bad, store)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a tar at all" * 100, "archive is corrupt or truncated"),
        (b"", "corrupt or truncated: empty file"),
    ],
)
def test_garbage_is_refused(tmp_path: Path, store: Store, content: bytes, message: str) -> None:
    path = tmp_path / "junk.tar"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=message):
        load_archive(path, store)


def test_tar_without_index_or_manifest_is_refused(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "plain.tar"
    path.write_bytes(layer_tar({"hello.txt": b"hi"}))
    with pytest.raises(ArchiveError, match=r"neither index.json .* nor manifest.json"):
        load_archive(path, store)


def test_bad_ref_name_is_refused(tmp_path: Path, store: Store) -> None:
    blobs, raw = image_blobs(small_layers())
    notes = {"org.opencontainers.image.ref.name": "Not A Ref!"}
    write_layout(tmp_path / "layout", blobs, [(raw, MT_MANIFEST, notes)])
    tar_directory(tmp_path / "layout", tmp_path / "img.tar")
    with pytest.raises(ArchiveError, match="'Not A Ref!' in the archive is not a valid reference"):
        load_archive(tmp_path / "img.tar", store)


def test_cli_load_prints_refs(
    tmp_path: Path, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "img.tar"
    build_archive(archive, small_layers(), ref="localhost:5000/team/app:3")
    assert main(["load", "-i", str(archive)]) == 0
    assert capsys.readouterr().out == "Loaded image: localhost:5000/team/app:3\n"
    assert "localhost:5000/team/app:3" in Store.default().refs()


def test_cli_load_error_exits_2_without_traceback(
    tmp_path: Path, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.tar"
    assert main(["load", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"envkit: error: cannot open archive {path}")
    assert "Traceback" not in err
