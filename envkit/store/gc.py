"""Garbage collection: ``prune`` (blobs no ref reaches) and ``remove`` (``docker rmi``).

Both run under the store lock held exclusive by their caller, so no other envkit process
is adding blobs or refs meanwhile and every file in ``tmp/`` is a leftover.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from envkit.errors import ReferenceError_, StoreError
from envkit.oci.reference import parse
from envkit.oci.types import Descriptor
from envkit.store import graph
from envkit.store.atomic import fsync_dir, is_live

if TYPE_CHECKING:
    from envkit.store.layout import PruneReport, RemoveReport, Store


def reachable(store: Store, entries: list[Descriptor]) -> set[str]:
    """Every blob the index entries reach.

    Raises :class:`StoreError` when a manifest cannot be read: what it references is
    unknown, so collecting around it could delete blobs a ref still needs.
    """
    keep: set[str] = set()
    for desc in entries:
        walk = graph.closure(store, desc)
        if walk.unreadable:
            bad = ", ".join(sorted(walk.unreadable))
            raise StoreError(
                f"cannot tell what the store still needs: manifest {bad} is unreadable",
                hint="run `envkit fsck --repair` first",
            )
        keep.update(walk.present)
    return keep


def prune(store: Store) -> PruneReport:
    """Delete every blob no index.json entry reaches, and every tmp leftover."""
    from envkit.store.layout import PruneReport

    report = PruneReport()
    keep = reachable(store, [desc for _, desc in store.entries()])
    for digest in store.blobs():
        if digest not in keep:
            report.freed_bytes += _unlink(store, digest)
            report.removed_blobs.append(digest)
    if report.removed_blobs:
        fsync_dir(store.blob_dir)
    for name in sorted(os.listdir(store.tmp_dir)):
        path = store.tmp_dir / name
        if path.is_file() and not is_live(path):
            report.freed_bytes += path.stat().st_size
            path.unlink()
            report.removed_tmp.append(f"tmp/{name}")
    return report


def remove_image(store: Store, ref_or_id: str) -> RemoveReport:
    """Untag ``ref_or_id`` and delete what only that image reached.

    A ref untags that ref only; an id or digest untags every ref of the image. Blobs are
    deleted once no index.json entry points at the image any more.
    """
    from envkit.store.layout import RemoveReport

    report = RemoveReport()
    target = _as_ref(store, ref_or_id)
    if target is not None:
        desc = store.untag(target)
        report.untagged.append(target)
    else:
        desc = store.resolve(ref_or_id)
        report.untagged.extend(store.untag_image(desc.digest))
    remaining = [d for _, d in store.entries()]
    if any(d.digest == desc.digest for d in remaining):
        return report
    walk = graph.closure(store, desc)
    keep = reachable(store, remaining)
    for digest in walk.present:
        if digest not in keep:
            report.freed_bytes += _unlink(store, digest)
            report.deleted.append(digest)
    if report.deleted:
        fsync_dir(store.blob_dir)
    return report


def _as_ref(store: Store, text: str) -> str | None:
    """The normalised ref ``text`` names when the store has it, else ``None``."""
    try:
        parsed = parse(text)
    except ReferenceError_:
        return None
    if parsed.digest is not None:
        return None
    name = str(parsed)
    return name if name in store.refs() else None


def _unlink(store: Store, digest: str) -> int:
    path = store.blob_path(digest)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return size
