"""Extracted image layers ("snapshots") that containers stack as overlay lower dirs.

Each layer is extracted once into ``$ENVKIT_HOME/snapshots/<diff_id hex>/`` and shared,
read-only, by every container of every image that has it. A layer is extracted on its
own into an empty directory, so its whiteouts have nothing to delete there; the count of
whiteouts and opaque directories is kept beside it (``<hex>.json``).

Overlayfs wants a lower layer's whiteouts as 0/0 character devices or overlay xattrs,
which the layer extractor does not write. So an image where a layer above the base has
whiteouts or opaque directories is instead materialised once, all layers applied in
order, into ``snapshots/chain-<chain id hex>/`` (the OCI ChainID of its diff_ids), and
runs on that single lower dir. Images without such layers share per-layer snapshots.

Ownership: a file of the image keeps its owner, as the host id that container owner is
(:func:`envkit.host.idmap.plan`), so that a container user owns what the image gives
it (a database's data dir). As root, container root is a subordinate id, so after a
privileged extraction every file's owner is shifted into that range (owner ``u``
becomes the host id of container ``u``); otherwise container root could not write
through the overlay. Rootless with subordinate ids, the layer is extracted as root of a
user namespace with the containers' maps (:mod:`envkit.host.as_root`), as rootless
podman does: owners land on the caller (container root) and its subordinate ids, and
such files are removed from inside that namespace again. Rootless with a single-id map
the extraction is unprivileged: every file belongs to the caller, who is container root.

Every snapshot is created under an exclusive per-snapshot lock and renamed into place
when complete, so concurrent ``envkit run`` processes extract a layer once, and a crash
leaves either nothing or a whole snapshot (``.partial-`` leftovers are garbage).

Collection: ``prune`` and ``fsck --repair`` remove snapshots no image, build cache entry
or container uses, and partial ones (:mod:`envkit.build.sweep`), under the store lock
held exclusive; :func:`prepare` holds it shared throughout.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from envkit.errors import LayerError, StoreError
from envkit.oci.digest import sha256_bytes
from envkit.oci.types import ImageConfig, Manifest
from envkit.records import Value
from envkit.settings import private_dir
from envkit.store.locks import lock_for
from envkit.store.store import Store


class Snapshot(Value):
    """The lower dirs of one image, **top first** (overlayfs' ``lowerdir`` order)."""

    layers: tuple[str, ...]
    #: True when the image was materialised into one chain snapshot (see module doc).
    flattened: bool = False

    @property
    def marks(self) -> tuple[str, ...]:
        """Paths that exist exactly while these snapshots are complete: a layer's count
        file is written last; a chain snapshot is renamed into place whole."""
        if self.flattened:
            return self.layers
        return tuple(f"{layer}.json" for layer in self.layers)


def snapshots_dir() -> Path:
    """``$ENVKIT_HOME/snapshots``."""
    return Path(private_dir("snapshots"))


def chain_id(diff_ids: Sequence[str]) -> str:
    """The OCI ChainID of a layer stack: ``sha256(chain(n-1) + " " + diff_id(n))``."""
    if not diff_ids:
        raise StoreError("an image without layers has no chain id")
    chain = diff_ids[0]
    for diff_id in diff_ids[1:]:
        chain = sha256_bytes(f"{chain} {diff_id}".encode())
    return chain


def prepare_image(store: Store, image: str) -> tuple[Manifest, ImageConfig, Snapshot]:
    """:func:`prepare` for the image ``image`` (an id, digest or reference in the store);
    its manifest and config, read on the way, with the snapshot."""
    _, manifest = store.image_manifest(store.resolve(image))
    config = store.config(manifest)
    return manifest, config, prepare(store, [d.digest for d in manifest.layers], config.diff_ids)


def prepare(store: Store, layer_digests: Sequence[str], diff_ids: Sequence[str]) -> Snapshot:
    """Make sure the snapshots of an image exist; its lower dirs, top first.

    ``layer_digests`` are the manifest's layer blobs, ``diff_ids`` the config's, both
    base first. Raises :class:`LayerError` when a layer does not match its diff_id.
    """
    if len(layer_digests) != len(diff_ids):
        raise StoreError(
            f"the manifest lists {len(layer_digests)} layers but the config "
            f"{len(diff_ids)} diff_ids",
            hint="the image is corrupt; `envkit fsck` checks the store",
        )
    if not diff_ids:
        raise StoreError(
            "the image has no layers: there is no root file system to run",
            hint="run an image with at least one layer",
        )
    root = snapshots_dir()
    # Shared for the whole preparation (taken before any snapshot's own lock): a
    # collection (envkit.build.sweep) holds it exclusive, so it never removes a snapshot
    # being made or checked here, nor the lock file of one.
    with store.shared():
        hides = False
        dirs = []
        for index, (digest, diff_id) in enumerate(zip(layer_digests, diff_ids, strict=True)):
            path, marks = _layer(store, root, digest, diff_id)
            dirs.append(str(path))
            hides = hides or (index > 0 and marks > 0)
        if not hides:
            return Snapshot(tuple(reversed(dirs)))
        return Snapshot((str(_chain(store, root, layer_digests, diff_ids)),), flattened=True)


def _layer(store: Store, root: Path, digest: str, diff_id: str) -> tuple[Path, int]:
    """The snapshot of one layer and its whiteout + opaque-dir count."""
    hexd = _hex(diff_id)
    dest, meta = root / hexd, root / f"{hexd}.json"
    if meta.exists():
        return dest, _marks(meta)
    root.mkdir(parents=True, exist_ok=True)
    # lazy for start-up: tar and zstd only to extract
    from envkit.oci.layer_reader import PARTIAL_INFIX

    with lock_for(root / f"{hexd}.lock").exclusive():
        if meta.exists():
            return dest, _marks(meta)
        if dest.exists():  # extracted, but the process died before writing the count
            _remove(dest)
        with store.shared():
            found, marks = _extract(store, digest, dest)
        if found != diff_id:
            _remove(dest)
            raise LayerError(
                f"layer {digest} uncompresses to {found}, not the image's diff_id {diff_id}",
                hint="the image is corrupt; load or pull it again",
            )
        _shift_owners(dest)
        tmp = meta.with_name(f".{meta.name}{PARTIAL_INFIX}")
        tmp.write_text(json.dumps({"diff_id": diff_id, "whiteouts": marks}))
        os.replace(tmp, meta)
    return dest, marks


def _chain(store: Store, root: Path, layer_digests: Sequence[str], diff_ids: Sequence[str]) -> Path:
    """All layers applied in order into one snapshot named by the chain id."""
    dest = root / f"chain-{_hex(chain_id(diff_ids))}"
    if dest.exists():
        return dest
    # Imported here: runs with every snapshot in place never pay for the tar machinery.
    from envkit.oci.layer_reader import PARTIAL_INFIX, extract_layer

    with lock_for(root / f"{dest.name}.lock").exclusive():
        if dest.exists():
            return dest
        import tempfile  # lazy for start-up: only to make a snapshot

        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}{PARTIAL_INFIX}", dir=root))
        try:
            os.chmod(tmp, 0o755)

            def apply_all() -> None:
                for digest in layer_digests:
                    with store.open_blob(digest) as stream:
                        extract_layer(stream, tmp, unprivileged=_unprivileged())

            # lazy: only as container root (downward)
            from envkit.host.as_root import with_container_owners

            with store.shared():
                with_container_owners(apply_all, LayerError)
            _shift_owners(tmp)
            os.rename(tmp, dest)
        except BaseException:
            _remove(tmp)
            raise
    return dest


def _unprivileged() -> bool:
    # Root of the user namespace counts as privileged: owners are restored.
    return os.geteuid() != 0


def _extract(store: Store, digest: str, dest: Path) -> tuple[str, int]:
    """Extract layer ``digest`` into ``dest`` (atomically); its diff_id and its count of
    whiteouts and opaque directories."""
    # lazy for start-up: tar and zstd only to extract
    from envkit.oci.layer_reader import extract_layer_atomic

    def extract() -> tuple[str, int]:
        with store.open_blob(digest) as stream:
            report = extract_layer_atomic(stream, dest, unprivileged=_unprivileged())
        return report.diff_id, report.whiteouts + report.opaque_dirs

    from envkit.host.as_root import with_container_owners  # lazy: only as container root (downward)

    # A failure there comes back as the LayerError an extraction here would raise.
    result = with_container_owners(extract, LayerError)
    assert isinstance(result, tuple | list)  # a list when it came back from the namespace
    found, marks = result
    return str(found), int(marks)


def _remove(path: Path) -> None:
    """Remove a snapshot (or a partial one); files of subordinate ids from inside the
    user namespace they were extracted in."""
    import shutil  # lazy for start-up: only to remove one (bz2, lzma: ~1.5 ms)

    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except PermissionError:
        # lazy: only as container root (downward)
        from envkit.host.as_root import call_as_container_root, subordinate_owners

        if not subordinate_owners():
            raise
        call_as_container_root(partial(shutil.rmtree, str(path)))


def _shift_owners(top: Path) -> None:
    """As root: give every file to the host ids its container owner maps to."""
    if os.geteuid() != 0:
        return
    from envkit.host import idmap  # lazy: only as root (downward)

    maps = idmap.plan()
    paths = [str(top)]
    for dirpath, dirnames, filenames in os.walk(top):
        paths += [os.path.join(dirpath, name) for name in (*dirnames, *filenames)]
    seen: set[tuple[int, int]] = set()
    for path in paths:
        st = os.lstat(path)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            # A hardlinked inode is shifted once: its other names already show host ids.
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        os.lchown(path, maps.to_host_uid(st.st_uid), maps.to_host_gid(st.st_gid))
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode))  # chown cleared the set-id bits


def _marks(meta: Path) -> int:
    try:
        return int(json.loads(meta.read_text())["whiteouts"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"snapshot metadata {meta} is unreadable: {exc}",
            hint=f"remove {meta} and its directory; the layer is extracted again",
        ) from None


def _hex(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
        raise StoreError(f"unsupported layer digest {digest!r}", hint="only sha256 is supported")
    return hexd
