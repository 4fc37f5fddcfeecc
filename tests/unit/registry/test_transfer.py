"""Pull and push against the in-process fake: platform selection, verification, range
resume after a dropped connection, chunked uploads, HEAD dedup, mounts and mirrors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envkit.errors import RegistryError
from envkit.oci.types import MT_OCI_INDEX, Platform
from envkit.registry import blobs as blob_transfer
from envkit.registry.credentials import Credentials
from envkit.registry.pull import pull
from envkit.registry.push import push
from envkit.store.store import Store
from tests import images
from tests.unit.registry.test_fakes import (
    FakeNet,
    FakeRegistry,
    client_factory,
    serve_image,
    sha,
    store_image,
)

BIG = images.random_layer(7, 300_000, files=2)


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store(envkit_home / "store")


def test_pull_stores_and_tags_an_image_with_equal_digests(store: Store) -> None:
    reg = FakeRegistry()
    raw, blobs = serve_image(reg, "team/app", "1", [b"a" * 1000, BIG], compression="zstd")
    got = pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    assert got.descriptor.digest == sha(raw)
    assert store.resolve("registry.test/team/app:1").digest == sha(raw)
    assert all(store.read_blob(d) == data for d, data in blobs.items())
    assert store.fsck().ok
    assert got.downloaded == 3


def test_a_first_pull_into_an_empty_store_sends_no_head(store: Store) -> None:
    """The HEAD only finds an image the store already holds: with no blob at all, the
    manifest GET comes first (one round trip less on a first pull)."""
    reg = FakeRegistry()
    serve_image(reg, "team/app", "1", [b"layer"])
    pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    sent = [(m, path) for m, path, _ in reg.log]
    assert sent[:2] == [("GET", "/v2/"), ("GET", "/v2/team/app/manifests/1")]
    assert all(m != "HEAD" for m, _ in sent)


def test_second_pull_downloads_nothing(store: Store) -> None:
    reg = FakeRegistry()
    serve_image(reg, "team/app", "1", [b"layer"])
    factory = client_factory(FakeNet(reg))
    pull("registry.test/team/app:1", store, client_factory=factory)
    before = len(reg.log)
    again = pull("registry.test/team/app:1", store, client_factory=factory)
    assert again.downloaded == 0
    assert [(m, path) for m, path, _ in reg.log[before:]] == [
        ("GET", "/v2/"),
        ("HEAD", "/v2/team/app/manifests/1"),
    ]
    assert again.descriptor == store.resolve("registry.test/team/app:1")


def test_pull_of_a_moved_tag_fetches_the_new_image(store: Store) -> None:
    reg = FakeRegistry()
    serve_image(reg, "team/app", "1", [b"old layer"])
    factory = client_factory(FakeNet(reg))
    pull("registry.test/team/app:1", store, client_factory=factory)
    raw, _ = serve_image(reg, "team/app", "1", [b"new layer"])
    again = pull("registry.test/team/app:1", store, client_factory=factory)
    assert again.downloaded == 2  # the new layer and config
    assert store.resolve("registry.test/team/app:1").digest == sha(raw)


def test_pull_with_a_layer_gone_from_the_store_fetches_it_again(store: Store) -> None:
    reg = FakeRegistry()
    _, served = serve_image(reg, "team/app", "1", [b"layer one", b"layer two"])
    factory = client_factory(FakeNet(reg))
    first = pull("registry.test/team/app:1", store, client_factory=factory)
    layer = store.manifest(first.manifest).layers[1]
    store.blob_path(layer.digest).unlink()
    again = pull("registry.test/team/app:1", store, client_factory=factory)
    assert again.downloaded == 1
    assert store.read_blob(layer.digest) == served[layer.digest]
    assert store.fsck().ok


def test_pull_by_digest_of_a_stored_image_sends_nothing(store: Store) -> None:
    reg = FakeRegistry()
    raw, _ = serve_image(reg, "team/app", "1", [b"layer"])
    factory = client_factory(FakeNet(reg))
    pull(f"registry.test/team/app@{sha(raw)}", store, client_factory=factory)
    before = len(reg.log)
    again = pull(f"registry.test/team/app@{sha(raw)}", store, client_factory=factory)
    assert again.downloaded == 0
    assert reg.log[before:] == []


def test_pull_and_push_release_every_response(store: Store) -> None:
    reg = FakeRegistry()
    serve_image(reg, "team/app", "1", [b"a" * 1000, BIG])
    net = FakeNet(reg)
    pull("registry.test/team/app:1", store, client_factory=client_factory(net))
    pull("registry.test/team/app:1", store, client_factory=client_factory(net))
    push("registry.test/team/app:1", "registry.test/team/copy:1", store,
         client_factory=client_factory(net), chunk_size=100_000)  # fmt: skip
    assert net.open_responses == 0


def _serve_index(reg: FakeRegistry) -> tuple[bytes, dict[str, bytes]]:
    entries = []
    per_arch = {}
    for arch in ("amd64", "arm64"):
        raw, _ = serve_image(reg, "lib/multi", None, [arch.encode() * 100], architecture=arch)
        per_arch[arch] = raw
        entries.append(
            {
                "mediaType": images.MT_MANIFEST,
                "digest": sha(raw),
                "size": len(raw),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    entries.append(
        {
            "mediaType": images.MT_MANIFEST,
            "digest": sha(b"attestation"),
            "size": 11,
            "platform": {"os": "unknown", "architecture": "unknown"},
        }
    )
    index = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries})
    reg.add_manifest("lib/multi", index.encode(), MT_OCI_INDEX, "1")
    return index.encode(), per_arch


def test_pull_of_an_index_picks_the_requested_platform(store: Store) -> None:
    reg = FakeRegistry()
    index, per_arch = _serve_index(reg)
    got = pull(
        "registry.test/lib/multi:1",
        store,
        platform="linux/arm64",
        client_factory=client_factory(FakeNet(reg)),
    )
    assert got.descriptor.digest == sha(index)
    assert got.manifest.digest == sha(per_arch["arm64"])
    assert not store.has_blob(sha(per_arch["amd64"]))
    assert (
        store.manifest(store.resolve("registry.test/lib/multi:1")).config.digest
        == (json.loads(per_arch["arm64"])["config"]["digest"])
    )
    assert store.fsck().ok


def test_pull_of_a_missing_platform_lists_what_the_index_has(store: Store) -> None:
    reg = FakeRegistry()
    _serve_index(reg)
    with pytest.raises(RegistryError) as info:
        pull(
            "registry.test/lib/multi:1",
            store,
            platform=Platform("linux", "s390x"),
            client_factory=client_factory(FakeNet(reg)),
        )
    assert "linux/amd64, linux/arm64" in str(info.value)
    assert "unknown" not in str(info.value)


def test_a_corrupt_blob_is_refused_and_nothing_is_tagged(store: Store) -> None:
    reg = FakeRegistry()
    raw, _ = serve_image(reg, "team/app", "1", [BIG])
    layer = json.loads(raw)["layers"][0]["digest"]
    reg.blobs[layer] = reg.blobs[layer][:-1] + b"X"
    with pytest.raises(RegistryError) as info:
        pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    assert layer in str(info.value)
    assert store.refs() == {}
    assert not store.has_blob(layer)
    assert not list(store.tmp_dir.iterdir())


def test_pull_by_digest_checks_the_manifest_digest(store: Store) -> None:
    reg = FakeRegistry()
    raw, _ = serve_image(reg, "team/app", "1", [b"x"])
    other = sha(b"not it")
    reg.manifests[("team/app", other)] = (raw, images.MT_MANIFEST)
    with pytest.raises(RegistryError) as info:
        pull(f"registry.test/team/app@{other}", store, client_factory=client_factory(FakeNet(reg)))
    assert "hashes to" in str(info.value)
    got = pull(
        f"registry.test/team/app@{sha(raw)}", store, client_factory=client_factory(FakeNet(reg))
    )
    assert store.refs() == {}  # a pull by digest keeps the image without a name
    assert store.resolve(sha(raw)).digest == got.descriptor.digest


def test_dropped_connection_resumes_with_a_range_request(store: Store) -> None:
    reg = FakeRegistry(drop_blob_after=[100_000])
    raw, _ = serve_image(reg, "team/app", "1", [BIG], compression="")
    layer = json.loads(raw)["layers"][0]["digest"]
    pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    ranges = [h.get("Range") for m, p, h in reg.log if m == "GET" and p.endswith(layer)]
    assert ranges == [None, "bytes=100000-"]
    assert store.read_blob(layer) == reg.blobs[layer]
    assert store.fsck().ok


def test_partial_left_by_a_killed_pull_is_resumed(store: Store) -> None:
    reg = FakeRegistry()
    raw, _ = serve_image(reg, "team/app", "1", [BIG], compression="")
    layer = json.loads(raw)["layers"][0]["digest"]
    store.fsck()  # creates the store directories
    blob_transfer.partial_path(store, layer).write_bytes(reg.blobs[layer][:4096])
    pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    ranges = [h.get("Range") for m, p, h in reg.log if m == "GET" and p.endswith(layer)]
    assert ranges == ["bytes=4096-"]
    assert store.fsck().ok


def test_a_corrupt_partial_is_detected_at_the_end(store: Store) -> None:
    reg = FakeRegistry()
    raw, _ = serve_image(reg, "team/app", "1", [BIG], compression="")
    layer = json.loads(raw)["layers"][0]["digest"]
    store.fsck()
    blob_transfer.partial_path(store, layer).write_bytes(b"\0" * 4096)
    with pytest.raises(RegistryError):
        pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    assert not store.has_blob(layer)
    # The bad partial is gone, so the next pull starts over and succeeds.
    pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    assert store.fsck().ok


def test_registry_ignoring_range_restarts_the_download(store: Store) -> None:
    reg = FakeRegistry(ranges=False, drop_blob_after=[50_000])
    raw, _ = serve_image(reg, "team/app", "1", [BIG], compression="")
    layer = json.loads(raw)["layers"][0]["digest"]
    pull("registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    assert store.read_blob(layer) == reg.blobs[layer]


def test_mirror_is_tried_first_and_upstream_on_failure(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = FakeRegistry(host="mirror.test")
    hub = FakeRegistry(host="registry-1.docker.io")
    serve_image(hub, "library/busybox", "latest", [b"hub"])
    raw, _ = serve_image(mirror, "library/busybox", "latest", [b"mirror"])
    monkeypatch.setenv("ENVKIT_REGISTRY_MIRRORS", "docker.io=mirror.test")
    factory = client_factory(FakeNet(mirror, hub))
    got = pull("busybox", store, client_factory=factory)
    assert got.source == "mirror.test" and got.descriptor.digest == sha(raw)
    assert str(got.ref) in store.refs()
    assert hub.log == []
    serve_image(hub, "library/alpine", "3", [b"alpine"])
    fallback = pull("alpine:3", store, client_factory=factory)
    assert fallback.source == "docker.io"
    assert "docker.io/library/alpine:3" in store.refs()


# -- push ------------------------------------------------------------------------------


def test_push_uploads_every_blob_then_the_manifest(store: Store) -> None:
    reg = FakeRegistry()
    desc = store_image(store, "app:1", [b"small", BIG])
    pushed = push(
        "app:1", "registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg))
    )
    assert pushed.digest == desc.digest and pushed.uploaded == 3
    assert reg.manifests[("team/app", "1")][0] == store.read_blob(desc.digest)
    assert reg.requests_of("PATCH") == []


def test_large_blobs_go_up_in_chunks(store: Store) -> None:
    reg = FakeRegistry()
    store_image(store, "app:1", [BIG], compression="")
    push(
        "app:1",
        "registry.test/team/app:1",
        store,
        chunk_size=64 * 1024,
        client_factory=client_factory(FakeNet(reg)),
    )
    patches = [h["Content-Range"] for m, _, h in reg.log if m == "PATCH"]
    size = len(images.compress(BIG, ""))
    assert len(patches) == -(-size // (64 * 1024))
    assert patches[0] == f"0-{64 * 1024 - 1}"
    assert patches[-1].endswith(f"-{size - 1}")


def test_blobs_the_registry_has_are_not_uploaded(store: Store) -> None:
    reg = FakeRegistry()
    store_image(store, "app:1", [b"one", b"two"])
    factory = client_factory(FakeNet(reg))
    push("app:1", "registry.test/team/app:1", store, client_factory=factory)
    posts = len(reg.requests_of("POST"))
    again = push("app:1", "registry.test/team/app:2", store, client_factory=factory)
    assert again.existing == 3 and again.uploaded == 0
    assert len(reg.requests_of("POST")) == posts


def test_push_mounts_blobs_from_another_repository_of_the_registry(store: Store) -> None:
    reg = FakeRegistry(auth="bearer", users={"u": "p"})
    factory = client_factory(FakeNet(reg), Credentials("u", "p"))
    store_image(store, "registry.test/base/img:1", [b"base layer"])
    push("registry.test/base/img:1", None, store, client_factory=factory)
    got = push(
        "registry.test/base/img:1", "registry.test/team/app:1", store, client_factory=factory
    )
    assert got.mounted == 2 and got.uploaded == 0  # the layer and the config
    mounts = [p for p in reg.requests_of("POST") if "mount=" in p]
    assert mounts and all("from=base%2Fimg" in p for p in mounts)
    assert any("repository:base/img:pull" in s for s in reg.tokens.values())


def test_push_retries_a_5xx(store: Store) -> None:
    reg = FakeRegistry(fail={"PUT": 1})
    desc = store_image(store, "app:1", [b"x"])
    push("app:1", "registry.test/team/app:1", store, client_factory=client_factory(FakeNet(reg)))
    assert reg.manifests[("team/app", "1")][0] == store.read_blob(desc.digest)


def test_push_of_what_the_tag_already_serves_is_one_head(store: Store) -> None:
    reg = FakeRegistry(auth="bearer", users={"u": "p"})
    factory = client_factory(FakeNet(reg), Credentials("u", "p"))
    store_image(store, "app:1", [b"one", b"two"])
    push("app:1", "registry.test/team/app:1", store, client_factory=factory)
    before = len(reg.log)
    again = push("app:1", "registry.test/team/app:1", store, client_factory=factory)
    sent = [(m, p) for m, p, _ in reg.log[before:]]
    assert sent[-1] == ("HEAD", "/v2/team/app/manifests/1")
    assert all(m in ("GET", "HEAD") for m, _ in sent)  # the ping, auth retries, no upload
    assert (again.existing, again.uploaded, again.mounted) == (3, 0, 0)


def test_push_to_a_tag_serving_another_image_replaces_it(store: Store) -> None:
    reg = FakeRegistry()
    factory = client_factory(FakeNet(reg))
    store_image(store, "app:1", [b"one"])
    push("app:1", "registry.test/team/app:1", store, client_factory=factory)
    desc = store_image(store, "app:2", [b"two"])
    pushed = push("app:2", "registry.test/team/app:1", store, client_factory=factory)
    assert pushed.uploaded == 2
    assert reg.manifests[("team/app", "1")][0] == store.read_blob(desc.digest)
