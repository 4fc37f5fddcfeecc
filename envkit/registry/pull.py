"""``envkit pull``: a reference from its registry (or a mirror) into the local store."""

from __future__ import annotations

import os

from envkit.errors import RegistryError, StoreError
from envkit.oci.reference import Reference, parse
from envkit.oci.types import Descriptor, Manifest, Platform
from envkit.records import Value
from envkit.registry import blobs, manifests
from envkit.registry.client import RegistryClient
from envkit.registry.endpoints import mirrors_for
from envkit.registry.parallel import map_parallel
from envkit.registry.progress import Progress
from envkit.store.atomic import fsync_dir
from envkit.store.graph import host_platform
from envkit.store.store import Store

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    ClientFactory = Callable[[str], RegistryClient]

#: Layers transferred at once.
PARALLEL = 3


class PulledImage(Value):
    """What a pull stored: the ref, the top descriptor (an index or a manifest, as the
    registry serves the ref), the platform's manifest, the registry used, and how many
    blobs were fetched (0: everything was present)."""

    ref: Reference
    descriptor: Descriptor
    manifest: Descriptor
    source: str
    downloaded: int


def pull(
    ref: str,
    store: Store | None = None,
    *,
    platform: str | Platform | None = None,
    progress: Progress | None = None,
    client_factory: ClientFactory = RegistryClient,
) -> PulledImage:
    """Pull ``ref`` (``busybox``, ``host:5000/app:1``, ``name@sha256:...``) into ``store``.

    Mirrors configured for the registry are tried first. A tag is tagged in the store;
    a pull by digest only keeps the image (as docker, without a name). Every blob and
    manifest is checked against its digest before anything is tagged.
    """
    parsed = parse(ref)
    store = store or Store.default()
    progress = progress or Progress.silent()
    want = manifests.parse_platform(platform) if isinstance(platform, str) else platform
    want = want or host_platform()
    errors: list[str] = []
    for mirror in mirrors_for(parsed.registry):
        try:
            with client_factory(mirror) as client:
                return _pull_from(client, parsed, store, want, progress)
        except RegistryError as exc:
            errors.append(f"mirror {mirror}: {exc.message}")
            progress.message(f"mirror {mirror} failed, trying {parsed.registry}")
    try:
        with client_factory(parsed.registry) as client:
            return _pull_from(client, parsed, store, want, progress)
    except RegistryError as exc:
        if errors:
            exc.message += " (also tried " + "; ".join(errors) + ")"
        raise


def _pull_from(
    client: RegistryClient, ref: Reference, store: Store, want: Platform, progress: Progress
) -> PulledImage:
    repo = ref.path
    where = f"{client.name}/{repo}"
    local = _local(client, ref, store, want, where)
    if local is not None:
        top, chosen, manifest = local
        fetched = 0
    else:
        top = manifests.fetch(client, repo, ref.digest or ref.tag or "latest")
        if ref.digest and top.digest != ref.digest:
            raise RegistryError(f"{where}: served {top.digest} for {ref.digest}")
        chosen = top
        if top.is_index:
            child = manifests.select(top, want, where)
            chosen = manifests.fetch(client, repo, child.digest)
            if chosen.is_index:
                raise RegistryError(f"{where}: index {top.digest} nests another index for {want}")
        manifest = _image_manifest(chosen, where)
    progress.message(f"{ref.tag or ref.digest}: Pulling from {repo}")
    with store.shared():
        if local is None:
            fetched = _download_all(
                client, repo, [manifest.config, *manifest.layers], store, progress
            )
        try:
            store.put_manifest(chosen.raw, chosen.media_type)
            if top.is_index:
                store.put_manifest(top.raw, top.media_type)
            if ref.tag:
                name = str(ref.with_tag(ref.tag))
                if store.refs().get(name) != top.descriptor:
                    store.tag(name, top.descriptor)
            else:
                store.keep(top.descriptor)
        except StoreError as exc:
            raise RegistryError(f"{where}: cannot store the image: {exc.message}") from None
    progress.message(f"Digest: {top.digest}")
    return PulledImage(ref, top.descriptor, chosen.descriptor, client.name, fetched)


def _image_manifest(chosen: manifests.RemoteManifest, where: str) -> Manifest:
    try:
        return Manifest.from_json(chosen.data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"{where}: manifest {chosen.digest} is malformed: {exc}") from None


def _local(
    client: RegistryClient, ref: Reference, store: Store, want: Platform, where: str
) -> tuple[manifests.RemoteManifest, manifests.RemoteManifest, Manifest] | None:
    """The image from the store, when it holds all of what the registry serves for
    ``ref``: then a pull needs no more than one HEAD request (none for a digest, whose
    content cannot change). None when anything is missing or unreadable."""
    if ref.digest:
        digest, content_type = ref.digest, ""
    elif _holds_no_blob(store):
        return None  # a first pull: the HEAD could only tell what the GET tells again
    else:
        announced = manifests.head(client, ref.path, ref.tag or "latest")
        if announced is None:
            return None
        digest, content_type = announced
    try:
        top = manifests.parse(store.read_blob(digest), content_type, f"{where}: {digest}")
        chosen = top
        if top.is_index:
            child = manifests.select(top, want, where)
            chosen = manifests.parse(store.read_blob(child.digest), child.media_type, where)
        if chosen.is_index:
            return None
        manifest = _image_manifest(chosen, where)
    except (StoreError, RegistryError):
        return None
    for blob in (manifest.config, *manifest.layers):
        if not blobs.present(store, blob):
            return None
    return top, chosen, manifest


def _holds_no_blob(store: Store) -> bool:
    try:
        with os.scandir(store.blob_dir) as entries:
            return next(entries, None) is None
    except FileNotFoundError:
        return True


def _download_all(
    client: RegistryClient,
    repo: str,
    wanted: list[Descriptor],
    store: Store,
    progress: Progress,
) -> int:
    """Download the blobs of ``wanted`` the store lacks, :data:`PARALLEL` at a time;
    returns how many were fetched. The caller holds ``store.shared()``."""
    missing = []
    for desc in wanted:
        if blobs.present(store, desc):
            progress.start(desc.digest, desc.size, "Already exists")
        else:
            missing.append(desc)

    def download(desc: Descriptor) -> bool:
        return blobs.download(client, repo, desc, store, progress, sync_dir=False)

    fetched = sum(map_parallel(download, missing, PARALLEL))
    if fetched:
        # One directory sync for every rename, before anything refers to the blobs.
        fsync_dir(store.blob_dir)
    return fetched
