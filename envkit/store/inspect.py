"""``envkit inspect``: one image as a JSON document, like ``docker image inspect``.

Honest about OCI: it names the manifest (what a ref points to, what a registry serves)
and the config (whose digest is the image id) separately, and lists layers with both
their compressed digest and their diff id.
"""

from __future__ import annotations

from typing import Any

from envkit.errors import ReferenceError_
from envkit.oci.reference import Reference, parse

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store


def inspect_image(store: Store, ref_or_id: str) -> dict[str, Any]:
    """The inspect document of the image ``ref_or_id`` resolves to."""
    desc = store.resolve(ref_or_id)
    chosen, manifest = store.image_manifest(desc)
    config = store.config(manifest)
    refs = sorted(ref for ref, d in store.entries() if ref and d.digest == desc.digest)
    diff_ids = config.diff_ids
    layers = [
        {
            "Digest": layer.digest,
            "MediaType": layer.media_type,
            "Size": layer.size,
            "DiffID": diff_ids[i] if i < len(diff_ids) else None,
        }
        for i, layer in enumerate(manifest.layers)
    ]
    raw = config.raw
    return {
        "Id": manifest.config.digest,
        "RepoTags": [_familiar(r) for r in refs],
        "Refs": refs,
        "RepoDigests": sorted({f"{_repo(r)}@{desc.digest}" for r in refs}),
        "Manifest": {
            "Digest": desc.digest,
            "MediaType": desc.media_type,
            "Size": desc.size,
            **({"PlatformManifest": chosen.digest} if chosen.digest != desc.digest else {}),
        },
        "ConfigDigest": manifest.config.digest,
        "Created": raw.get("created", ""),
        "Author": raw.get("author", ""),
        "Architecture": config.platform.architecture,
        "Os": config.platform.os,
        **({"Variant": config.platform.variant} if config.platform.variant else {}),
        "Config": config.config,
        "RootFS": {"Type": "layers", "Layers": diff_ids},
        "Layers": layers,
        "History": raw.get("history", []),
        "Size": manifest.config.size + sum(layer.size for layer in manifest.layers),
        "Annotations": dict(manifest.annotations),
    }


def _familiar(ref: str) -> str:
    try:
        return parse(ref).familiar
    except ReferenceError_:  # a name another tool wrote, kept as it is
        return ref


def _repo(ref: str) -> str:
    """The familiar repository name (``busybox``, ``localhost:5000/app``)."""
    try:
        parsed = parse(ref)
    except ReferenceError_:
        return ref
    return Reference(parsed.registry, parsed.path).familiar
