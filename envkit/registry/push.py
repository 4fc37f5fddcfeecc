"""``envkit push``: an image of the local store to a registry."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from envkit.errors import ReferenceError_, RegistryError, StoreError
from envkit.oci.reference import Reference, parse
from envkit.oci.types import Descriptor, Manifest
from envkit.registry import blobs, manifests
from envkit.registry.client import RegistryClient
from envkit.registry.progress import Progress
from envkit.store import graph
from envkit.store.layout import Store

PARALLEL = 3

ClientFactory = Callable[[str], RegistryClient]


@dataclass(frozen=True)
class PushedImage:
    """What a push did: the ref written, the digest the registry now serves for it, and
    how many blobs were uploaded, mounted or found present."""

    ref: Reference
    digest: str
    uploaded: int
    mounted: int
    existing: int


def push(
    image: str,
    ref: str | None = None,
    store: Store | None = None,
    *,
    progress: Progress | None = None,
    client_factory: ClientFactory = RegistryClient,
    chunk_size: int = blobs.DEFAULT_CHUNK_SIZE,
) -> PushedImage:
    """Push ``image`` (a name, id or digest in the store) as ``ref`` (default: its name).

    An index is pushed whole when every platform it lists is in the store; otherwise the
    host platform's manifest is pushed alone. Blobs the registry has are not uploaded;
    blobs of other repositories of the same registry (known from the store's refs) are
    mounted.
    """
    store = store or Store.default()
    progress = progress or Progress.silent()
    target = parse(ref or image)
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.shared())
        top = store.resolve(image)
        raw = store.read_blob(top.digest)
        data = graph.parse_document(raw, top.digest)
        pushes: list[tuple[bytes, Descriptor, Manifest]] = []
        if graph.is_index(data, top.media_type):
            kids = graph.children(data)
            if all(store.has_blob(k.digest) for k in kids):
                for kid in kids:
                    pushes.append((store.read_blob(kid.digest), kid, store.manifest(kid)))
            else:
                chosen, manifest = store.image_manifest(top)
                raw, top = store.read_blob(chosen.digest), chosen
                pushes = [(raw, chosen, manifest)]
                progress.message(f"pushing only {chosen.digest}: not every platform is here")
        else:
            pushes = [(raw, top, store.manifest(top))]
        client = stack.enter_context(client_factory(target.registry))
        repo = target.path
        counts = {"uploaded": 0, "mounted": 0, "exists": 0}
        sources = _mount_sources(store, target)
        progress.message(f"The push refers to repository [{target.name}]")
        for manifest_raw, desc, manifest in pushes:
            wanted = [*manifest.layers, manifest.config]
            with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
                jobs = [
                    pool.submit(
                        blobs.upload,
                        client,
                        repo,
                        blob,
                        store,
                        progress,
                        mount_from=sources.get(blob.digest, []),
                        chunk_size=chunk_size,
                    )
                    for blob in wanted
                ]
                for job in jobs:
                    counts[job.result()] += 1
            if len(pushes) > 1 or desc.digest != top.digest:
                manifests.put(client, repo, desc.digest, manifest_raw, desc.media_type)
        reference = target.tag or target.digest or "latest"
        if target.digest and target.digest != top.digest:
            raise RegistryError(
                f"{target}: the image is {top.digest}, not the digest the target names",
                hint="push to a tag, or give the image's own digest",
            )
        manifests.put(client, repo, reference, raw, top.media_type)
    progress.message(f"{target.tag or target.digest}: digest: {top.digest} size: {len(raw)}")
    return PushedImage(target, top.digest, counts["uploaded"], counts["mounted"], counts["exists"])


def _mount_sources(store: Store, target: Reference) -> dict[str, list[str]]:
    """For each blob, repositories of the target's registry (other than the target)
    that the store's refs say hold it."""
    out: dict[str, list[str]] = {}
    for name, desc in store.refs().items():
        try:
            ref = parse(name)
        except ReferenceError_:
            continue
        if ref.registry != target.registry or ref.path == target.path:
            continue
        try:
            manifest = store.manifest(desc)
        except StoreError:
            continue
        for blob in (manifest.config, *manifest.layers):
            repos = out.setdefault(blob.digest, [])
            if ref.path not in repos:
                repos.append(ref.path)
    return out
