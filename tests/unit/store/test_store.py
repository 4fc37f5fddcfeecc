"""The content store: blobs, refs, resolve, gc and fsck on one process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from envkit.errors import DigestMismatchError, ImageNotFoundError, ReferenceError_, StoreError
from envkit.oci.digest import sha256_bytes
from envkit.oci.types import MT_OCI_INDEX, MT_OCI_MANIFEST, Descriptor, Index, Platform
from envkit.store.store import Store
from tests.unit.store_helpers import make_image


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_layout_files_are_valid_oci(store: Store) -> None:
    make_image(store, "busybox")
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store.root / "index.json").read_text())
    assert index["schemaVersion"] == 2
    [entry] = index["manifests"]
    assert entry["annotations"] == {
        "org.opencontainers.image.ref.name": "docker.io/library/busybox:latest"
    }


def test_write_and_read_blob_round_trip(store: Store) -> None:
    desc = store.write_blob(b"hello")
    assert desc.digest == sha256_bytes(b"hello") and desc.size == 5
    assert store.read_blob(desc.digest) == b"hello"
    assert store.has_blob(desc.digest)
    assert list(store.blobs()) == [desc.digest]
    assert list((store.root / "tmp").iterdir()) == []


def test_write_blob_rejects_wrong_expected_digest(store: Store) -> None:
    with pytest.raises(DigestMismatchError):
        store.write_blob(b"hello", expected=sha256_bytes(b"other"))
    assert list(store.blobs()) == []


def test_ingest_streams_and_verifies(store: Store) -> None:
    data = b"x" * (3 << 20)
    digest, size = store.ingest(io.BytesIO(data), expected=sha256_bytes(data), size=len(data))
    assert (digest, size) == (sha256_bytes(data), len(data))
    assert store.read_blob(digest) == data


@pytest.mark.parametrize(
    ("expected", "size"),
    [(sha256_bytes(b"other"), None), (None, 3), (None, 100)],
    ids=["digest", "too-long", "too-short"],
)
def test_ingest_mismatch_leaves_nothing(
    store: Store, expected: str | None, size: int | None
) -> None:
    with pytest.raises(DigestMismatchError):
        store.ingest(io.BytesIO(b"content"), expected=expected, size=size)
    assert list(store.blobs()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_ingest_skips_present_blob_without_reading(store: Store) -> None:
    desc = store.write_blob(b"abc")
    stream = io.BytesIO(b"abc")
    assert store.ingest(stream, expected=desc.digest, size=3) == (desc.digest, 3)
    assert stream.tell() == 0


def test_read_blob_of_corrupt_blob_raises(store: Store) -> None:
    desc = store.write_blob(b"intact content")
    store.blob_path(desc.digest).write_bytes(b"intact")
    with pytest.raises(DigestMismatchError, match="corrupt"):
        store.read_blob(desc.digest)


def test_open_blob_verify_raises_at_end(store: Store) -> None:
    desc = store.write_blob(b"0123456789")
    with store.open_blob(desc.digest, verify=True) as f:
        assert f.read() == b"0123456789"
    store.blob_path(desc.digest).write_bytes(b"01234")
    with store.open_blob(desc.digest, verify=True) as f, pytest.raises(DigestMismatchError):
        f.read()


def test_missing_blob_is_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="not in the store"):
        store.read_blob(sha256_bytes(b"nope"))


def test_put_manifest_requires_its_blobs(store: Store) -> None:
    config = store.write_blob(b"{}")
    layer = Descriptor("application/vnd.oci.image.layer.v1.tar", sha256_bytes(b"absent"), 6)
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json()],
        }
    ).encode()
    with pytest.raises(StoreError, match="references blobs not in the store"):
        store.put_manifest(raw, MT_OCI_MANIFEST)


def test_put_manifest_keeps_bytes(store: Store) -> None:
    desc = make_image(store)
    raw = store.read_blob(desc.digest) + b"\n"
    again = store.put_manifest(raw, MT_OCI_MANIFEST)
    assert again.digest == sha256_bytes(raw) and store.read_blob(again.digest) == raw


@pytest.mark.parametrize(
    "name",
    ["busybox", "busybox:latest", "docker.io/library/busybox:latest", "index.docker.io/busybox"],
)
def test_resolve_familiar_and_normalised_refs(store: Store, name: str) -> None:
    desc = make_image(store, "busybox")
    assert store.resolve(name) == desc


def test_resolve_digest_and_id_prefixes(store: Store) -> None:
    desc = make_image(store, "app:1")
    config_digest = store.manifest(desc).config.digest
    assert store.resolve(desc.digest) == desc
    assert store.resolve(config_digest) == desc
    assert store.resolve(config_digest[7:19]) == desc
    assert store.resolve(desc.digest[:19]) == desc
    assert store.resolve(f"app@{desc.digest}") == desc


def test_resolve_short_prefix_is_not_an_id(store: Store) -> None:
    desc = make_image(store, "app:1")
    with pytest.raises(ImageNotFoundError):
        store.resolve(desc.digest[7:18])  # 11 hex: treated as a name only


def test_resolve_ambiguous_prefix(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_image(store, "a")
    b = make_image(store, "b")
    prefix = "abcdefabcdef"
    real = Store._config_digest

    def fake(self: Store, desc: Descriptor) -> str:
        return "sha256:" + prefix + real(self, desc)[19:]

    monkeypatch.setattr(Store, "_config_digest", fake)
    assert a != b
    with pytest.raises(ReferenceError_, match="ambiguous"):
        store.resolve(prefix)


def test_resolve_unknown_names_what_was_asked(store: Store) -> None:
    with pytest.raises(ImageNotFoundError, match="'ghost:1'") as info:
        store.resolve("ghost:1")
    assert info.value.hint is not None and "envkit images" in info.value.hint


def test_resolve_bad_ref_is_reference_error(store: Store) -> None:
    with pytest.raises(ReferenceError_):
        store.resolve("Not A Ref")


def test_tag_moves_and_untag_returns_target(store: Store) -> None:
    one = make_image(store, "app:1", created="2024-01-01T00:00:00Z")
    two = make_image(store, "other", created="2024-02-01T00:00:00Z")
    store.tag("app:latest", one)
    store.tag("app:latest", two)
    assert store.refs()["docker.io/library/app:latest"] == two
    assert store.untag("app") == two
    assert "docker.io/library/app:latest" not in store.refs()
    with pytest.raises(ImageNotFoundError):
        store.untag("app")


def test_tag_rejects_digest_and_unknown_manifest(store: Store) -> None:
    desc = make_image(store)
    with pytest.raises(ReferenceError_):
        store.tag(f"app@{desc.digest}", desc)
    ghost = Descriptor(MT_OCI_MANIFEST, sha256_bytes(b"ghost"), 5)
    with pytest.raises(StoreError):
        store.tag("app", ghost)


def test_images_newest_first_with_sizes(store: Store) -> None:
    old = make_image(store, "old", created="2023-01-01T00:00:00Z")
    new = make_image(store, "new", layers=2, created="2024-06-01T00:00:00.123456789Z")
    records = store.images()
    assert [r.ref for r in records] == [
        "docker.io/library/new:latest",
        "docker.io/library/old:latest",
    ]
    manifest = store.manifest(new)
    expected = new.size + manifest.config.size + sum(layer.size for layer in manifest.layers)
    assert records[0].size == expected
    assert records[1].manifest == old
    assert records[1].config_digest == store.manifest(old).config.digest


def test_refs_written_by_other_tools_are_normalised(store: Store) -> None:
    desc = make_image(store)
    index = Index(
        manifests=(
            Descriptor(
                desc.media_type,
                desc.digest,
                desc.size,
                annotations={"org.opencontainers.image.ref.name": "busybox"},
            ),
        )
    )
    (store.root / "index.json").write_bytes(index.to_bytes())
    assert store.resolve("docker.io/library/busybox:latest") == desc


def test_index_resolves_to_host_platform(store: Store) -> None:
    amd = make_image(store, created="2024-01-01T00:00:00Z")
    other = Descriptor(
        MT_OCI_MANIFEST, sha256_bytes(b"arm"), 3, platform=Platform(architecture="s390x")
    )
    index = Index(
        manifests=(
            other,
            Descriptor(
                amd.media_type, amd.digest, amd.size, platform=Platform(architecture="amd64")
            ),
        )
    )
    desc = store.put_manifest(index.to_bytes(), MT_OCI_INDEX)
    store.tag("multi", desc)
    assert store.image_manifest("sha256:" + desc.digest[7:])[0].digest == amd.digest
    assert store.images()[0].config_digest == store.manifest(amd).config.digest
    assert store.fsck().ok


def test_remove_keeps_shared_blobs(store: Store) -> None:
    a = make_image(store, "a", files={"shared": b"same"}, layers=1)
    store.tag("b", a)
    report = store.remove("a")
    assert report.untagged == ["docker.io/library/a:latest"] and report.deleted == []
    report = store.remove("b")
    assert report.deleted[0] == a.digest
    assert list(store.blobs()) == []


def test_remove_by_id_untags_every_ref(store: Store) -> None:
    desc = make_image(store, "a")
    store.tag("b:2", desc)
    keep = make_image(store, "c")
    config_id = store.manifest(desc).config.digest[7:19]
    report = store.remove(config_id)
    assert sorted(report.untagged) == ["docker.io/library/a:latest", "docker.io/library/b:2"]
    assert desc.digest in report.deleted
    assert store.resolve("c") == keep and store.fsck().ok


def test_prune_removes_unreferenced_and_tmp(store: Store) -> None:
    kept = make_image(store, "kept")
    loose = store.write_blob(b"nobody references me")
    (store.root / "tmp" / "tmp-blob-1-abc").write_bytes(b"half")
    report = store.prune()
    assert report.removed_blobs == [loose.digest]
    assert report.removed_tmp == ["tmp/tmp-blob-1-abc"]
    assert report.freed_bytes == loose.size + 4
    assert store.resolve("kept") == kept and store.fsck().ok


def test_prune_refuses_when_a_manifest_is_corrupt(store: Store) -> None:
    desc = make_image(store, "app")
    store.blob_path(desc.digest).write_bytes(b"{}")
    with pytest.raises(StoreError, match="fsck --repair"):
        store.prune()


def test_fsck_finds_truncated_blob_and_repair_fixes(store: Store) -> None:
    broken = make_image(store, "broken", layers=2)
    fine = make_image(store, "fine")
    layer = store.manifest(broken).layers[1].digest
    path = store.blob_path(layer)
    path.write_bytes(path.read_bytes()[:10])
    report = store.fsck()
    assert not report.ok and not report.healthy
    assert report.corrupt_blobs == [layer]
    assert report.broken_refs == ["docker.io/library/broken:latest"]
    repaired = store.fsck(repair=True)
    assert repaired.healthy and repaired.remaining == []
    assert any(layer in line for line in repaired.repaired)
    assert any("broken:latest" in line for line in repaired.repaired)
    assert not path.exists()
    assert list(store.refs()) == ["docker.io/library/fine:latest"]
    assert store.resolve("fine") == fine
    assert store.fsck().ok


def test_fsck_reports_missing_blob_and_stray_files(store: Store) -> None:
    desc = make_image(store, "app")
    config = store.manifest(desc).config.digest
    store.blob_path(config).unlink()
    (store.blob_dir / "not-a-digest").write_bytes(b"x")
    report = store.fsck()
    assert report.missing_blobs == [config]
    assert report.broken_refs == ["docker.io/library/app:latest"]
    assert report.partial_files == ["blobs/sha256/not-a-digest"]
    assert store.fsck(repair=True).healthy
    assert store.refs() == {} and store.fsck().ok


def test_fsck_repair_sets_damaged_index_aside(store: Store) -> None:
    make_image(store, "app")
    (store.root / "index.json").write_text("{not json")
    with pytest.raises(StoreError, match="fsck --repair"):
        store.refs()
    report = store.fsck(repair=True)
    assert report.layout_errors and report.healthy
    assert store.refs() == {}
    assert list(store.root.glob("index.json.damaged-*"))
