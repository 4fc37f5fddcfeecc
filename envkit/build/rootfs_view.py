"""Read-only look-ups in an image's file system, through its extracted snapshots.

A copy needs the metadata of directories that already exist (``/tmp`` stays 1777 when a
file is copied into it), ``/etc/passwd`` for ``chown="name"``, and, for
``copy(from_=stage)``, the files of another stage. :class:`RootView` answers from the
snapshot lower dirs of :mod:`envkit.store.snapshots` (top first, no whiteouts between
them, or one flattened dir), mapping host owners back to container ids.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence

from envkit.records import Value
from envkit.runtime.rootfs import secure_join

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.build.image_state import ImageState
    from envkit.store.store import Store


class Found(Value):
    """A path of the image: where it is on the host and its container metadata."""

    host: str
    mode: int  # full st_mode
    uid: int
    gid: int

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class RootView:
    """The merged file system of lower dirs ``layers`` (top first)."""

    def __init__(self, layers: Sequence[str], *, as_container_root: bool = False) -> None:
        """``as_container_root``: for a process that is root of the containers' user
        namespace (:mod:`envkit.host.as_root`), where files show their container
        owners as they are."""
        self.layers = tuple(layers)
        self._base_uid, self._base_gid = (0, 0) if as_container_root else _host_root()
        from envkit.host import idmap  # lazy: only as root (downward)

        rootless = os.geteuid() != 0 and not as_container_root
        self._maps = idmap.plan() if rootless else None

    def as_container_root(self) -> RootView:
        """The same view, for use as root of the containers' user namespace."""
        return RootView(self.layers, as_container_root=True)

    @classmethod
    def of(cls, store: Store, state: ImageState) -> RootView:
        """The view of ``state``'s layers (extracted once, shared with ``envkit run``)."""
        if not state.layers:
            return cls(())
        from envkit.store import snapshots  # lazy: only images with layers (downward)

        snap = snapshots.prepare(store, [d.digest for d in state.layers], state.diff_ids)
        return cls(snap.layers)

    def lookup(self, path: str) -> Found | None:
        """``path`` (absolute, in the image) if it exists; symlinks are not followed."""
        for layer in self.layers:
            host = secure_join(layer, os.path.dirname(path.rstrip("/")) or "/")
            host = os.path.join(host, os.path.basename(path.rstrip("/")))
            try:
                st = os.lstat(host)
            except (FileNotFoundError, NotADirectoryError):
                continue
            return self._found(host, st)
        return None

    def read_text(self, path: str) -> str:
        """The text of a file of the image, ``""`` when absent."""
        from envkit.runtime.image_config import read_image_file  # lazy: only when read

        return read_image_file(self.layers, path)

    def walk(self, path: str) -> Iterator[tuple[str, Found]]:
        """``path`` and, for a directory, everything below it as (relative path, entry);
        the directory itself is ``"."``. Children are merged over the layers, top wins."""
        top = self.lookup(path)
        if top is None:
            return
        yield ".", top
        if top.is_dir:
            yield from self._children(path.rstrip("/") or "/", "")

    def _children(self, path: str, rel: str) -> Iterator[tuple[str, Found]]:
        names: dict[str, Found] = {}
        for layer in self.layers:
            host_dir = secure_join(layer, path)
            try:
                if not stat.S_ISDIR(os.lstat(host_dir).st_mode):
                    break  # a file hides the directories below it
                listing = os.listdir(host_dir)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in listing:
                if name not in names:
                    host = os.path.join(host_dir, name)
                    names[name] = self._found(host, os.lstat(host))
        for name in sorted(names):
            child_rel = f"{rel}/{name}" if rel else name
            yield child_rel, names[name]
            if names[name].is_dir:
                yield from self._children(f"{path.rstrip('/')}/{name}", child_rel)

    def _found(self, host: str, st: os.stat_result) -> Found:
        if self._maps is not None:
            # Rootless: owners are the caller and its subordinate ids (or, under a
            # single-id map, every file is the caller's); see envkit.store.snapshots.
            uid, gid = (
                self._maps.to_container_uid(st.st_uid),
                self._maps.to_container_gid(st.st_gid),
            )
            return Found(host, st.st_mode, uid, gid)
        uid, gid = max(st.st_uid - self._base_uid, 0), max(st.st_gid - self._base_gid, 0)
        return Found(host, st.st_mode, uid, gid)


def _host_root() -> tuple[int, int]:
    """The host ids of container root for snapshots extracted as root, else (0, 0)."""
    if os.geteuid() != 0:
        return 0, 0
    from envkit.host import idmap  # lazy: only as root (downward)

    maps = idmap.plan()
    return maps.to_host_uid(0), maps.to_host_gid(0)
