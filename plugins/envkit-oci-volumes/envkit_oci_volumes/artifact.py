"""A volume snapshot as an OCI artifact: one zstd layer tar and a small config.

The manifest is an OCI image manifest used for an artifact (image-spec 1.1): its
``artifactType`` and config media type say it is an envkit volume, so registries store it
like any image and no container runtime mistakes it for one::

    {"schemaVersion": 2,
     "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "artifactType": "application/vnd.envkit.volume.v1",
     "config": {"mediaType": "application/vnd.envkit.volume.config.v1+json", ...},
     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", ...,
                 "annotations": {"org.opencontainers.image.title": "volume.tar.zst"}}]}

Blobs pass through a private OCI layout (not the image store, so ``envkit images`` and
``prune`` never see them); uploads skip blobs the registry has, downloads are verified
against their digests before anything is extracted.
"""

from __future__ import annotations

from pathlib import Path

from envkit.errors import RegistryError, VolumeError
from envkit.plugins import (
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    Descriptor,
    Reference,
    RegistryClient,
    Store,
    canonical_json,
    download_blob,
    fetch_manifest,
    put_manifest,
    sha256_bytes,
    upload_blob,
)
from envkit.plugins import RegistryProgress as Progress

ARTIFACT_TYPE = "application/vnd.envkit.volume.v1"
CONFIG_MEDIA_TYPE = "application/vnd.envkit.volume.config.v1+json"
TITLE = "org.opencontainers.image.title"


def push(snapshot: Path, ref: Reference, volume: str, size: int, store: Store) -> Descriptor:
    """Push the snapshot file (a zstd layer tar) as artifact ``ref``; returns the
    manifest's descriptor."""
    with store.shared():
        with open(snapshot, "rb") as f:
            digest, length = store.ingest(f)
        layer = Descriptor(MT_OCI_LAYER_ZSTD, digest, length, {TITLE: "volume.tar.zst"})
        config_raw = canonical_json({"volume": volume, "size": size, "format": "tar+zstd"})
        config = store.write_blob(config_raw).replace(media_type=CONFIG_MEDIA_TYPE)
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "artifactType": ARTIFACT_TYPE,
                "config": config.to_json(),
                "layers": [layer.to_json()],
            }
        )
        progress = Progress.silent()
        with RegistryClient(ref.registry) as client:
            for blob in (layer, config):
                upload_blob(client, ref.path, blob, store, progress)
            put_manifest(client, ref.path, ref.tag or "latest", manifest, MT_OCI_MANIFEST)
    return Descriptor(MT_OCI_MANIFEST, sha256_bytes(manifest), len(manifest))


def pull(ref: Reference, store: Store) -> Descriptor:
    """Fetch artifact ``ref`` and its layer into ``store``; returns the layer's
    descriptor (the blob is present and verified)."""
    with RegistryClient(ref.registry) as client, store.shared():
        try:
            remote = fetch_manifest(client, ref.path, ref.tag or ref.digest or "latest")
        except RegistryError as exc:
            raise VolumeError(f"no snapshot {ref}: {exc.message}", hint=exc.hint) from None
        data = remote.data
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        kind = data.get("artifactType") or (config or {}).get("mediaType")
        if kind not in (ARTIFACT_TYPE, CONFIG_MEDIA_TYPE):
            raise VolumeError(
                f"{ref}: not an envkit volume snapshot (artifact type {kind!r})",
                hint="snapshots are pushed by the oci volume backend's snapshot()",
            )
        try:
            (layer,) = [Descriptor.from_json(d) for d in data.get("layers", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise VolumeError(f"{ref}: the snapshot's manifest is malformed ({exc})") from None
        if layer.media_type != MT_OCI_LAYER_ZSTD:
            raise VolumeError(f"{ref}: unexpected layer media type {layer.media_type!r}")
        try:
            download_blob(client, ref.path, layer, store, Progress.silent())
        except RegistryError as exc:
            raise VolumeError(f"{ref}: {exc.message}", hint=exc.hint) from None
    return layer
