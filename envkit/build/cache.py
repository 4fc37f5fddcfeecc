"""The build cache: step results by key, and the cache mounts of ``run(caches=...)``.

``$ENVKIT_HOME/cache/steps/<key hex>.json`` holds the image state after a step (its
layers and config, :class:`~envkit.build.image_state.ImageState`), written atomically. An
entry is only used while every layer blob it lists is in the store. Entries are not
fsynced (as the context's snapshot files): an entry names only blobs committed (fsynced)
before it, and what a crash can make of an entry that was not yet on disk, none, an
empty or a cut one, reads as a miss, so a crash costs at most running its step again.
Builds hold the store lock shared while they write blobs and entries; :func:`prune_cache`
runs under the exclusive lock before the store's prune and drops every entry whose
layers no image in the store reaches, so no entry outlives its blobs. A per-key lock
(``<key hex>.lock``) makes concurrent builds of the same step run it once.

``$ENVKIT_HOME/cache/mounts/<id>/`` are the cache mount directories. They are never part
of a layer; :func:`export_mounts` / :func:`import_mounts` move them as one tar, owners
written as container ids so that another machine's id maps apply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from envkit import settings
from envkit.build.image_state import ImageState
from envkit.errors import BuildError
from envkit.records import Record, field
from envkit.store.atomic import TempFile
from envkit.store.locks import lock_for

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store

ENTRY_VERSION = 1


def cache_dir() -> Path:
    """``$ENVKIT_HOME/cache``."""
    return Path(settings.private_dir("cache"))


def steps_dir() -> Path:
    """Where step entries live."""
    return cache_dir() / "steps"


def mounts_dir() -> Path:
    """Where cache mount directories live."""
    return cache_dir() / "mounts"


def _hex(key: str) -> str:
    algo, _, hexd = key.partition(":")
    if algo != "sha256" or len(hexd) != 64:
        raise BuildError(f"malformed step key {key!r}", hint="an envkit bug: please report it")
    return hexd


class StepCache:
    """Step entries under :func:`steps_dir` (created on first write)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or steps_dir()

    def path(self, key: str) -> Path:
        """The entry file of ``key``."""
        return self.root / f"{_hex(key)}.json"

    def get(self, key: str, store: Store) -> ImageState | None:
        """The state after step ``key``, or ``None`` (absent, damaged, or a blob is gone)."""
        try:
            data = json.loads(self.path(key).read_bytes())
            if data.get("v") != ENTRY_VERSION or data.get("key") != key:
                return None
            state = ImageState.from_json(data["state"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if not all(store.has_blob(layer.digest) for layer in state.layers):
            return None
        return state

    def put(self, key: str, state: ImageState) -> None:
        """Record the state after step ``key`` (atomically, not fsynced: see the module's
        doc; the last writer wins). An entry that says the same already is kept."""
        body = {"v": ENTRY_VERSION, "key": key, "state": state.to_json()}
        data = json.dumps(body, sort_keys=True).encode()
        dest = self.path(key)
        try:
            if dest.read_bytes() == data:
                return  # a --no-cache rebuild's step, unchanged
        except OSError:
            pass
        self.root.mkdir(parents=True, exist_ok=True)
        # A locked temp file beside it (a killed build's is swept), renamed into place
        # unsynced; closing it then finds nothing left to remove.
        with TempFile(self.root, dest.name.replace(".", "_")) as tmp:
            tmp.write(data)
            os.replace(tmp.path, dest)

    def lock(self, key: str) -> AbstractContextManager[None]:
        """An exclusive lock on ``key``: one build at a time executes that step."""
        self.root.mkdir(parents=True, exist_ok=True)
        return lock_for(self.root / f"{_hex(key)}.lock").exclusive()

    def entries(self) -> Iterator[Path]:
        """Every entry file."""
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                yield self.root / name


class CachePruneReport(Record):
    """What :func:`prune_cache` removed."""

    removed: list[str] = field(default_factory=list)  # step keys
    freed_bytes: int = 0


def prune_cache(store: Store, *, everything: bool = False) -> CachePruneReport:
    """Drop step entries whose layers are not all reached by an image in the store
    (``everything``: drop all). Takes the store lock exclusive: call it before
    :meth:`Store.prune`, in the same exclusive section, so no entry outlives its blobs."""
    from envkit.store.gc import reachable  # lazy: only prune (downward)

    cache = StepCache()
    report = CachePruneReport()
    with store.exclusive():
        keep = reachable(store, [desc for _, desc in store.entries()])
        for path in cache.entries():
            try:
                data = json.loads(path.read_bytes())
                state = ImageState.from_json(data["state"])
                used = all(layer.digest in keep for layer in state.layers)
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                used = False
            if used and not everything:
                continue
            report.freed_bytes += path.stat().st_size
            path.unlink()
            path.with_suffix(".lock").unlink(missing_ok=True)
            report.removed.append("sha256:" + path.stem)
    return report


def mount_dir(cache_id: str) -> Path:
    """The directory of cache mount ``cache_id`` (created, owned by container root)."""
    path = mounts_dir() / cache_id
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            from envkit.host import idmap  # lazy: only as root (downward)

            maps = idmap.plan()
            os.chown(path, maps.to_host_uid(0), maps.to_host_gid(0))
    return path


def export_mounts(out: Path) -> list[str]:
    """Write every cache mount to the tar ``out``; returns the cache ids written."""
    import tarfile  # lazy: only to export cache mounts

    root = mounts_dir()
    ids = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    to_container = _id_shift(-1)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for cache_id in ids:

            def owners(info: tarfile.TarInfo) -> tarfile.TarInfo:
                info.uid, info.gid = to_container(info.uid, info.gid)
                info.uname = info.gname = ""
                return info

            tar.add(root / cache_id, arcname=cache_id, filter=owners)
    return ids


def import_mounts(src: Path) -> list[str]:
    """Extract a tar written by :func:`export_mounts` into the cache mounts (merging)."""
    # lazy: only to import cache mounts (downward)
    import tarfile

    from envkit.oci.layer_reader import extract_layer

    root = mounts_dir()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(src) as tar:
            ids = sorted({m.name.split("/", 1)[0] for m in tar.getmembers()})
    except (OSError, tarfile.TarError) as exc:
        raise BuildError(
            f"{src}: not a cache archive: {exc}",
            hint="pass a file written by `envkit cache export`",
        ) from None
    with open(src, "rb") as stream:
        extract_layer(stream, root, unprivileged=os.geteuid() != 0)
    if os.geteuid() == 0:
        to_host = _id_shift(+1)
        for cache_id in ids:
            top = root / cache_id
            for path in (top, *top.rglob("*")):
                st = os.lstat(path)
                os.lchown(path, *to_host(st.st_uid, st.st_gid))
    return ids


def _id_shift(direction: int) -> _Shift:
    """Map (uid, gid) host -> container (``-1``) or container -> host (``+1``) as root;
    identity for an unprivileged caller, whose files all stand for container root."""
    if os.geteuid() != 0:
        return lambda uid, gid: (0, 0) if direction < 0 else (uid, gid)
    from envkit.host import idmap  # lazy: only as root (downward)

    maps = idmap.plan()
    base_u, base_g = maps.to_host_uid(0), maps.to_host_gid(0)

    def shift(uid: int, gid: int) -> tuple[int, int]:
        if direction > 0:
            return maps.to_host_uid(uid), maps.to_host_gid(gid)
        return max(uid - base_u, 0), max(gid - base_g, 0)

    return shift


if TYPE_CHECKING:
    from collections.abc import Callable

    _Shift = Callable[[int, int], tuple[int, int]]
