"""The ``docker save`` archive format (``manifest.json``, ``<id>.json``, layer tars).

Reading: a docker archive carries no manifest, so one is built: an OCI manifest
(``application/vnd.oci.image.manifest.v1+json``) whose config is the archive's config,
byte for byte, so the image id (config digest) is the one docker and podman report; its
layers are the archive's layer tars as they are (uncompressed, or gzip/zstd when the
writer compressed them; xz and bzip2 layers are stored decompressed). Each layer is
checked against the config's ``rootfs.diff_ids``. The manifest is canonical JSON, so
loading the same archive twice gives the same manifest digest.

Writing: layers uncompressed as docker expects, named ``<diff_id hex>.tar``, the config
as ``<id>.json``, one ``manifest.json`` entry per image id with its ``RepoTags``. Tags are
written in full (``docker.io/library/busybox:1``): docker normalises them the same way,
while podman would read a short ``busybox:1`` as ``localhost/busybox:1``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, BinaryIO

from envkit.errors import ArchiveError, DigestMismatchError, ReferenceError_, StoreError
from envkit.oci import compression
from envkit.oci.archive_read import ArchiveContents, metadata_json
from envkit.oci.digest import CHUNK, hex_of
from envkit.oci.reference import parse as parse_ref
from envkit.oci.types import (
    MT_OCI_CONFIG,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
)
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store

_HEX_NAME_RE = re.compile(r"(?:^|/)([a-f0-9]{64})(?:\.json)?$")
_LAYER_TYPES = {"": MT_OCI_LAYER, "gzip": MT_OCI_LAYER_GZIP, "zstd": MT_OCI_LAYER_ZSTD}


def images_from_docker_manifest(
    contents: ArchiveContents, store: Store
) -> list[tuple[bytes, str, list[str]]]:
    """(manifest bytes, media type, refs) of each image a docker archive's manifest.json lists."""
    data = metadata_json(contents, "manifest.json")
    if not isinstance(data, list) or not data:
        raise ArchiveError(f"{contents.name}: manifest.json lists no image")
    found = []
    for n, entry in enumerate(data):
        what = f"manifest.json entry {n}"
        if not isinstance(entry, dict):
            raise ArchiveError(f"{contents.name}: {what} is not an object")
        config_path, layer_paths, tags = _entry_fields(entry, what, contents.name)
        config_desc = _config_descriptor(config_path, contents, store)
        config = _read_config(config_desc.digest, config_path, contents, store)
        diff_ids = config.diff_ids
        if len(diff_ids) != len(layer_paths):
            raise ArchiveError(
                f"{contents.name}: {what} lists {len(layer_paths)} layers, its config "
                f"{config_path} has {len(diff_ids)} diff_ids",
                hint="the archive is corrupt; save it again",
            )
        layers = tuple(
            _layer_descriptor(path, diff_id, contents, store)
            for path, diff_id in zip(layer_paths, diff_ids, strict=True)
        )
        manifest = Manifest(config=config_desc, layers=layers, media_type=MT_OCI_MANIFEST)
        found.append((manifest.to_bytes(), MT_OCI_MANIFEST, _refs(tags, contents.name)))
    return found


def _entry_fields(
    entry: dict[str, Any], what: str, archive: str
) -> tuple[str, list[str], list[str]]:
    config = entry.get("Config")
    layers = entry.get("Layers")
    tags = entry.get("RepoTags") or []
    if not isinstance(config, str) or not isinstance(layers, list):
        raise ArchiveError(f"{archive}: {what} has no Config or Layers")
    if not all(isinstance(x, str) for x in (*layers, *tags)) or not isinstance(tags, list):
        raise ArchiveError(f"{archive}: {what} has malformed Layers or RepoTags")
    return config, layers, tags


def _config_descriptor(path: str, contents: ArchiveContents, store: Store) -> Descriptor:
    digest, size = contents.file(path, "image config")
    match = _HEX_NAME_RE.search(path)
    # docker names the config after the image id: a mismatch is a corrupt archive.
    if match and digest != "sha256:" + match.group(1):
        raise ArchiveError(
            f"{contents.name}: image config {path} does not match its digest "
            f"(content has {digest})",
            hint="the archive is corrupt; nothing was tagged",
        )
    return Descriptor(MT_OCI_CONFIG, digest, size)


def _read_config(digest: str, path: str, contents: ArchiveContents, store: Store) -> ImageConfig:
    try:
        return ImageConfig.from_bytes(store.read_blob(digest))
    except StoreError as exc:
        raise ArchiveError(f"{contents.name}: image config {path}: {exc.message}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(
            f"{contents.name}: image config {path} is not valid JSON: {exc}"
        ) from None


def _layer_descriptor(
    path: str, diff_id: str, contents: ArchiveContents, store: Store
) -> Descriptor:
    digest, size = contents.file(path, "layer")
    with store.open_blob(digest) as blob:
        kind = compression.detect(blob.read(8))
    if kind == "":
        if digest != diff_id:
            raise _diff_id_mismatch(contents.name, path, digest, diff_id)
        return Descriptor(MT_OCI_LAYER, digest, size)
    if kind in _LAYER_TYPES:
        with store.open_blob(digest) as blob:
            actual = _uncompressed_digest(blob, kind)
        if actual != diff_id:
            raise _diff_id_mismatch(contents.name, path, actual, diff_id)
        return Descriptor(_LAYER_TYPES[kind], digest, size)
    # xz and bzip2 are no OCI layer media types: keep the layer uncompressed.
    try:
        with store.open_blob(digest) as blob:
            stored, stored_size = store.ingest(
                compression.open_decompressed(blob, kind), expected=diff_id
            )
    except DigestMismatchError:
        raise _diff_id_mismatch(contents.name, path, "another digest", diff_id) from None
    contents.sizes[stored] = stored_size
    return Descriptor(MT_OCI_LAYER, stored, stored_size)


def _uncompressed_digest(stream: BinaryIO, kind: str) -> str:
    h = hashlib.sha256()
    with compression.open_decompressed(stream, kind) as raw:
        while chunk := raw.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _diff_id_mismatch(archive: str, path: str, actual: str, diff_id: str) -> ArchiveError:
    return ArchiveError(
        f"{archive}: layer {path} does not match its config: content has {actual}, "
        f"diff_id is {diff_id}",
        hint="the archive is corrupt; nothing was tagged",
    )


def _refs(tags: list[str], archive: str) -> list[str]:
    refs = []
    for text in tags:
        try:
            refs.append(str(parse_ref(text)))
        except ReferenceError_ as exc:
            raise ArchiveError(
                f"{archive}: RepoTags entry {text!r} is not a valid reference",
                hint=exc.hint or exc.message,
            ) from None
    return refs


# -- writing -----------------------------------------------------------------------------


class DockerLayer(Value):
    """One layer to write: the stored blob and the uncompressed digest docker expects."""

    blob: Descriptor
    diff_id: str

    @property
    def name(self) -> str:
        return hex_of(self.diff_id) + ".tar"


class DockerImage(Value):
    """One image of a docker archive being written."""

    config: Descriptor
    layers: tuple[DockerLayer, ...]
    repo_tags: tuple[str, ...]  # full normalised refs: docker and podman read them alike

    @property
    def config_name(self) -> str:
        return hex_of(self.config.digest) + ".json"

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "Config": self.config_name,
            "RepoTags": list(self.repo_tags),
            "Layers": [layer.name for layer in self.layers],
        }


def docker_image(manifest: Manifest, config: ImageConfig, repo_tags: Sequence[str]) -> DockerImage:
    """Pair each layer of ``manifest`` with its diff_id; :class:`ArchiveError` when they differ."""
    diff_ids = config.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise ArchiveError(
            f"image {manifest.config.digest}: {len(manifest.layers)} layers but "
            f"{len(diff_ids)} diff_ids in its config",
            hint="the image is corrupt; `envkit fsck` checks the store",
        )
    layers = tuple(
        DockerLayer(desc, diff_id) for desc, diff_id in zip(manifest.layers, diff_ids, strict=True)
    )
    return DockerImage(manifest.config, layers, tuple(repo_tags))
