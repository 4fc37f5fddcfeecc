"""Deterministic layer tars for copy steps, written straight from their sources.

A copy's layer is not staged in a directory: its entries (from the build context or
another stage's file system) are streamed into the tar with the owners, modes and
mtimes the image must have. So ``chown`` needs no privilege, host owners never leak
(files are 0:0 unless ``chown``), and nothing is copied twice. The tar follows the rules
of :mod:`envkit.oci.layer_writer`: PAX, entries in walk order (each directory before its
children, names sorted by bytes), numeric owners only, mtimes clamped to the build epoch.

A context file is read from the context's snapshot (:mod:`envkit.build.context`): its
content as the build read it at the start. It is hashed again while it is written; if
its content does not match the digest the step's cache key was computed from, the copy
fails rather than cache a lie.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable

from envkit.errors import BuildError
from envkit.oci.compression import open_compressor
from envkit.oci.digest import CHUNK, StreamSha256
from envkit.oci.hashing_io import HashingWriter
from envkit.oci.layer_writer import MEDIA_TYPES, LayerInfo
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO, Literal

    from envkit.oci.layer_writer import Compression

    Kind = Literal["file", "dir", "symlink"]


class LayerEntry(Value):
    """One entry of a copy layer. ``path`` is relative to the image root (no leading /)."""

    path: str
    kind: Kind
    mode: int  # permission bits only
    uid: int = 0
    gid: int = 0
    host: str = ""  # a file's content on the host
    target: str = ""  # a symlink's target
    digest: str = ""  # the content digest the file must have ("" when not checked)
    data: bytes | None = None  # a file's content given inline (instead of ``host``)


def sort_key(path: str) -> tuple[bytes, ...]:
    """Walk order: a directory right before its children, siblings by name bytes."""
    return tuple(os.fsencode(part) for part in path.split("/"))


def write_entries(
    entries: Iterable[LayerEntry],
    out: BinaryIO,
    *,
    epoch: int,
    compression: Compression = "gzip",
) -> LayerInfo:
    """Write ``entries`` (the last one per path wins) as a layer tar to ``out``."""
    unique = {e.path: e for e in entries}
    compressed = HashingWriter(out)
    kind = "" if compression == "none" else compression
    compressor = open_compressor(compressed, kind)  # type: ignore[arg-type]
    plain = HashingWriter(compressor)
    with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(unique, key=sort_key):
            _add(tar, unique[path], epoch)
    compressor.close()
    return LayerInfo(
        digest=compressed.digest,
        size=compressed.size,
        diff_id=plain.digest,
        media_type=MEDIA_TYPES[compression],
    )


def _add(tar: tarfile.TarFile, entry: LayerEntry, epoch: int) -> None:
    info = tarfile.TarInfo(entry.path)
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = epoch
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
        tar.addfile(info)
    else:
        _add_file(tar, info, entry)


def _add_file(tar: tarfile.TarFile, info: tarfile.TarInfo, entry: LayerEntry) -> None:
    if entry.data is not None:
        info.size = len(entry.data)
        tar.addfile(info, io.BytesIO(entry.data))
        return
    try:
        fd = os.open(entry.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise BuildError(
            f"copy: cannot read {entry.host}: {exc.strerror}",
            hint="check that the file exists and is readable",
        ) from None
    with os.fdopen(fd, "rb") as stream:
        info.size = os.fstat(fd).st_size
        checked = _Checked(stream)
        tar.addfile(info, checked)
    if entry.digest and checked.digest != entry.digest:
        if _is_snapshot_blob(entry):
            os.unlink(entry.host)  # damaged: the next build reads the context file again
            raise BuildError(
                f"copy: the snapshot of a context file ({entry.host}) is damaged",
                hint="build again: the damaged snapshot was removed",
            )
        raise BuildError(
            f"copy: {entry.host} changed while the image was built",
            hint="build again once nothing writes to the build context",
        )


def _is_snapshot_blob(entry: LayerEntry) -> bool:
    """Whether ``entry.host`` is a context snapshot blob (``<ctx>.files/<hex>``)."""
    parent, name = os.path.split(entry.host)
    return parent.endswith(".files") and entry.digest == "sha256:" + name


class _Checked:
    """A reader hashing what tarfile reads from it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = StreamSha256()  # a small file's without importing hashlib

    def read(self, size: int = CHUNK) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()
