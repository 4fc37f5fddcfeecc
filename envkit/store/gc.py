"""Garbage collection: ``prune`` (blobs no ref reaches) and ``remove`` (``docker rmi``).

Both run under the store lock held exclusive by their caller, so no other envkit process
is adding blobs or refs meanwhile and every file in ``tmp/`` is a leftover.
"""

from __future__ import annotations

import contextlib
import os

from envkit.errors import EnvkitError, ReferenceError_, StoreError
from envkit.oci.reference import parse
from envkit.oci.types import Descriptor
from envkit.records import Value
from envkit.store import graph
from envkit.store.atomic import fsync_dir, is_live
from envkit.store.store import PruneReport, RemoveReport, is_dangling

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

    from envkit.store.store import PruneReport, RemoveReport, Store


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


def drop_dangling(store: Store, users: Sequence[ImageUser]) -> list[str]:
    """Remove the index.json entries of dangling images (left unnamed by ``rmi -f`` for
    the containers that used them) that none of ``users`` uses any more, as ``docker
    image prune`` removes dangling images; their blobs are then unreferenced for
    :func:`prune`. Images loaded, built or pulled by digest without a name are not
    dangling and stay. Returns the manifest digests dropped; hold the store lock
    exclusive, with ``users`` every container there is."""
    drop: set[str] = set()
    for ref, desc in store.entries():
        if ref or not is_dangling(desc):
            continue
        try:
            used = _users_of(store, desc, users)
        except EnvkitError:
            continue  # unreadable: fsck reports it, and what it reaches is unknown
        if not used:
            drop.add(desc.digest)
    for digest in sorted(drop):
        store.untag_image(digest)
    return sorted(drop)


class ImageUser(Value):
    """A container that uses an image: its image id (the config digest), container id,
    name and whether it runs (``rmi`` checks these, as docker's daemon does)."""

    image_id: str
    container_id: str
    name: str
    running: bool

    @property
    def shown(self) -> str:
        """The container as messages name it: short id and name."""
        short = self.container_id[:12]
        return f"{short} ({self.name})" if self.name and self.name != short else short


def remove_image(
    store: Store, ref_or_id: str, *, force: bool = False, users: Sequence[ImageUser] = ()
) -> RemoveReport:
    """Untag ``ref_or_id`` and delete what only that image reached.

    A ref untags that ref only; an id or digest untags every ref of the image. Blobs are
    deleted once no index.json entry points at the image any more.

    Containers in ``users`` of the image make it a conflict, as in docker: removing the
    image's only name without ``force`` is refused (the image would be left without a
    name under a container); with ``force`` the name goes but the image is kept,
    unnamed, for its containers. By id, a running container's image is refused even
    with ``force``, a stopped one's without it. A refusal changes nothing.
    """
    report = RemoveReport()
    target = _as_ref(store, ref_or_id)
    desc = store.resolve(ref_or_id)
    using = _users_of(store, desc, users)
    if target is not None:
        if using and not force and _single_reference(store, desc.digest):
            image_id = using[0].image_id.removeprefix("sha256:")[:12]
            raise StoreError(
                f"conflict: unable to remove repository reference "
                f'"{parse(target).familiar}" (must force) - container {using[0].shown} is '
                f"using its referenced image {image_id}",
                hint=f"remove the container first (`envkit rm -f {using[0].name}`), or "
                "`envkit rmi -f` to untag it (the image stays for the container)",
            )
        desc = store.untag(target)
        report.untagged.append(target)
    else:
        _check_delete(desc, using, force)
        report.untagged.extend(store.untag_image(desc.digest))
    remaining = [d for _, d in store.entries()]
    if any(d.digest == desc.digest for d in remaining):
        return report
    if using:
        # Unnamed and dangling, as docker leaves a forced image under a container:
        # prune removes it once no container uses it (drop_dangling).
        store.keep(desc, dangling=True)
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


def _users_of(store: Store, desc: Descriptor, users: Sequence[ImageUser]) -> list[ImageUser]:
    """Those of ``users`` whose image is ``desc`` (by config or manifest digest),
    running ones first."""
    if not users:
        return []
    ids = {desc.digest, store.image_manifest(desc)[1].config.digest}
    found = [u for u in users if u.image_id in ids]
    return sorted(found, key=lambda u: not u.running)


def _single_reference(store: Store, digest: str) -> bool:
    """docker's ``isSingleReference``: the image's names are in one repository with at
    most one tag (digest names of that repository aside)."""
    names = [ref for ref, d in store.entries() if ref and d.digest == digest]
    if len(names) <= 1:
        return len(names) == 1
    tags = [parse(n) for n in names if parse(n).digest is None]
    if len(tags) > 1:
        return False
    repos = {parse(n).name for n in names if parse(n).digest is not None}
    single = tags[0] if tags else parse(names[0])
    return repos == {single.name}


def _check_delete(desc: Descriptor, using: list[ImageUser], force: bool) -> None:
    """docker's delete conflicts for an image named by id: a running container's image
    cannot be removed, a stopped one's only with ``force``."""
    if not using or (force and not using[0].running):
        return
    user = using[0]
    image_id = user.image_id.removeprefix("sha256:")[:12]
    if user.running:
        raise StoreError(
            f"conflict: unable to delete {image_id} (cannot be forced) - image is being "
            f"used by running container {user.shown}",
            hint=f"stop and remove the container first (`envkit rm -f {user.name}`)",
        )
    raise StoreError(
        f"conflict: unable to delete {image_id} (must be forced) - image is being used "
        f"by stopped container {user.shown}",
        hint=f"remove the container first (`envkit rm {user.name}`), or `envkit rmi -f`",
    )


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
