"""What ``run`` needs of an image, remembered per name so a warm start skips the store.

Resolving a name (index.json, manifest, config) and checking its layer snapshots costs
more than starting the container itself, mostly in imports. Once resolved, the result
(config digest, the image's ``config`` object and the snapshot lower dirs) is kept in
``$ENVKIT_HOME/run-cache/<crc32 of the name>.json``. An entry is used only while

* ``store/index.json`` is the same file it was (device, inode, size, mtime): every tag,
  untag, load, pull and build rewrites it by atomic rename, so a name that moved is
  resolved again; and
* every snapshot directory it names still has its completion mark (``prune`` removes
  a snapshot's mark before its directory, and the entries naming it; a manual ``rm``
  of a snapshot sends the name back to the store too).

``prune`` also reads the entries: a container whose image was removed from the store
keeps the snapshot dirs its entry remembers. A run holds :func:`holding` from the look-up
until its container record is written.

The cache is derived data: an unreadable or stale entry is ignored and rewritten, and
entries are written to a temp file and renamed, so a crash leaves the old one or none.
This module imports only the standard library's light parts: it is on the start-up path.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager, suppress

from envkit.settings import home_dir, private_dir
from envkit.store.atomic import temp_name

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

#: Bumped when the entry format changes; older entries are then ignored.
VERSION = 1


class Resolved:
    """An image as a container needs it: ids, config and lower dirs (top first)."""

    __slots__ = ("image_id", "layers", "settings")

    def __init__(self, image_id: str, settings: dict[str, object], layers: Sequence[str]):
        self.image_id = image_id
        #: The image config's ``config`` object (Entrypoint, Cmd, Env, User...).
        self.settings = settings
        self.layers = tuple(layers)


def _home() -> str:
    return home_dir()


def _entry_path(name: str) -> str:
    # crc32, not sha256: hashlib costs milliseconds to import. A collision only makes
    # two names take turns in one file: an entry is used for the name it records.
    import zlib

    return os.path.join(private_dir("run-cache"), f"{zlib.crc32(name.encode()):08x}.json")


def index_stamp() -> list[int] | None:
    """The identity of ``store/index.json`` now (``None``: no store yet)."""
    try:
        st = os.stat(os.path.join(_home(), "store", "index.json"))
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


@contextmanager
def holding() -> Iterator[None]:
    """The store lock, shared: hold it from picking an image's snapshots (:func:`lookup`
    or the store) until the container's record exists, so that a collection
    (:mod:`envkit.build.sweep`, which holds it exclusive and keeps what records use)
    cannot remove them in between. A plain ``flock`` (envkit.store.locks imports
    threading and pathlib, which ``run`` does without); a second shared holder in this
    process (the store's own lock, on another descriptor) is compatible with it."""
    import fcntl  # lazy: only while a run picks snapshots

    store = os.path.join(_home(), "store")
    os.makedirs(store, exist_ok=True)
    fd = os.open(os.path.join(store, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def lookup(name: str) -> Resolved | None:
    """The remembered resolution of ``name``, or ``None`` when there is none or it is stale."""
    stamp = index_stamp()
    if stamp is None:
        return None
    try:
        with open(_entry_path(name), "rb") as f:
            data = json.load(f)
        if data["version"] != VERSION or data["name"] != name or data["index"] != stamp:
            return None
        layers, marks = data["layers"], data["marks"]
        settings = data["settings"]
        image_id = data["image_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (isinstance(layers, list) and isinstance(marks, list) and isinstance(settings, dict)):
        return None
    if not all(isinstance(m, str) and os.path.exists(m) for m in marks):
        return None
    return Resolved(str(image_id), settings, [str(layer) for layer in layers])


def remember(name: str, resolved: Resolved, marks: Sequence[str], stamp: list[int]) -> None:
    """Keep ``resolved`` for ``name``; ``marks`` are paths that exist while its snapshots
    are complete, ``stamp`` the :func:`index_stamp` read *before* resolving (so a change
    made meanwhile makes the entry stale rather than wrong). Failures are ignored."""
    path = _entry_path(name)
    entry = {
        "version": VERSION,
        "name": name,
        "index": stamp,
        "image_id": resolved.image_id,
        "settings": resolved.settings,
        "layers": list(resolved.layers),
        "marks": list(marks),
    }
    tmp = os.path.join(os.path.dirname(path), temp_name("run-cache"))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(entry, f)
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            os.unlink(tmp)
