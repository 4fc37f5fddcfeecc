"""``envkit push``: an image of the local store to a registry."""

from __future__ import annotations

import contextlib

from envkit.errors import ReferenceError_, RegistryError, StoreError
from envkit.oci.reference import Reference, parse
from envkit.oci.types import Descriptor, Manifest
from envkit.records import Value
from envkit.registry import blobs, manifests
from envkit.registry.client import RegistryClient
from envkit.registry.parallel import map_parallel
from envkit.registry.progress import Progress
from envkit.store import graph
from envkit.store.store import Store

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    ClientFactory = Callable[[str], RegistryClient]

PARALLEL = 3


class PushedImage(Value):
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
        top, raw, pushes = _plan(store, image, progress)
        if target.digest and target.digest != top.digest:
            raise RegistryError(
                f"{target}: the image is {top.digest}, not the digest the target names",
                hint="push to a tag, or give the image's own digest",
            )
        client = stack.enter_context(client_factory(target.registry))
        repo = target.path
        reference = target.tag or target.digest or "latest"
        progress.message(f"The push refers to repository [{target.name}]")
        served = manifests.head(client, repo, reference, actions="pull,push")
        if served is not None and served[0] == top.digest:
            # A registry only accepts a manifest whose blobs it holds: all there already.
            blob_count = len({b.digest for _, _, m in pushes for b in (m.config, *m.layers)})
            counts = {"uploaded": 0, "mounted": 0, "exists": blob_count}
            progress.message(f"{reference}: the registry already serves {top.digest}")
        else:
            counts = _push_blobs(client, repo, store, target, pushes, progress, chunk_size)
            for manifest_raw, desc, _ in pushes:
                if len(pushes) > 1 or desc.digest != top.digest:
                    manifests.put(client, repo, desc.digest, manifest_raw, desc.media_type)
            manifests.put(client, repo, reference, raw, top.media_type)
    progress.message(f"{target.tag or target.digest}: digest: {top.digest} size: {len(raw)}")
    return PushedImage(target, top.digest, counts["uploaded"], counts["mounted"], counts["exists"])


_Push = tuple[bytes, Descriptor, Manifest]


def _plan(store: Store, image: str, progress: Progress) -> tuple[Descriptor, bytes, list[_Push]]:
    """What to push for ``image``: the top descriptor and bytes, and each image manifest
    (bytes, descriptor, parsed). The caller holds ``store.shared()``."""
    top = store.resolve(image)
    raw = store.read_blob(top.digest)
    data = graph.parse_document(raw, top.digest)
    if not graph.is_index(data, top.media_type):
        return top, raw, [(raw, top, store.manifest(top))]
    kids = graph.children(data)
    if all(store.has_blob(k.digest) for k in kids):
        return top, raw, [(store.read_blob(k.digest), k, store.manifest(k)) for k in kids]
    chosen, manifest = store.image_manifest(top)
    progress.message(f"pushing only {chosen.digest}: not every platform is here")
    raw = store.read_blob(chosen.digest)
    return chosen, raw, [(raw, chosen, manifest)]


def _push_blobs(
    client: RegistryClient,
    repo: str,
    store: Store,
    target: Reference,
    pushes: list[_Push],
    progress: Progress,
    chunk_size: int,
) -> dict[str, int]:
    """Make every blob of ``pushes`` present in ``repo``, :data:`PARALLEL` at a time
    (checked, mounted or uploaded); returns the count of each outcome."""
    counts = {"uploaded": 0, "mounted": 0, "exists": 0}
    sources = _mount_sources(store, target)

    def upload(blob: Descriptor) -> str:
        return blobs.upload(
            client,
            repo,
            blob,
            store,
            progress,
            mount_from=sources.get(blob.digest, []),
            chunk_size=chunk_size,
        )

    for _, _, manifest in pushes:
        for outcome in map_parallel(upload, [*manifest.layers, manifest.config], PARALLEL):
            counts[outcome] += 1
    return counts


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
