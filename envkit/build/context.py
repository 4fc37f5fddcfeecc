"""Build-context hashing: which files a copy reads, and one digest for all of them.

:class:`ContextHasher` walks a context directory, applies its ignore rules
(:mod:`envkit.build.ignore`) and a copy's source selection (a file, a directory, or a glob
such as ``src/*.py``), and hashes what it selected. The digest of a selection covers each
entry's path where it lands, its type, permission bits, symlink target and content: not
mtimes, owners or inode numbers, so the same tree gives the same digest on any machine.

Docker's context semantics: a build uses the context as it was read when the build
started. Reading a file for its digest also keeps its content in the context's snapshot,
``$ENVKIT_HOME/cache/context/<sha256 of the absolute context path>.files/<hex>`` (a
reflink clone where the file system can make one, else a copy written while the file is
hashed: one read of the file either way; never a hard link, which would share later
writes). A copy step writes its layer from the snapshot, so a file written while the
image builds (``envkit build > build.log`` in the project) is built as it was read and
never fails the build. The selections a build planned are remembered in the process
(:func:`planned_selection`), so its copy steps do not walk the context again. The
envkit home (``ENVKIT_HOME``) is never part of a context, even when it lies inside one.
Like BuildKit's local source cache the snapshot is kept between builds: an unchanged file
(by the index below) is neither read nor copied again; blobs no index entry refers to
any more are removed a day after they were written.

A directory excluded by the ignore rules whose content is partly re-included (``foo*``
then ``!foo/bar2``) is selected with the re-included files, with its own mode, as
Docker's context walk does.

Content digests are kept in a stat-based index, as git's index does:
``$ENVKIT_HOME/cache/context/<sha256 of the absolute context path>.json`` maps each
relative path to ``(size, mtime_ns, ino, mode, ctime_ns)`` and its digest, so a file
whose stat is unchanged is not read again. A file modified in the same clock tick as the
index was written could keep its stat; such an entry (mtime not older than the index
file's) is "racily clean" and is hashed again next time, as git does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from envkit import settings
from envkit.build.ignore import Matcher, ParentMatches, Pattern, clean, context_matcher
from envkit.errors import ContextError, RuntimeError_
from envkit.oci.digest import CHUNK, new_sha256, sha256_bytes
from envkit.records import Value
from envkit.store.atomic import TMP_PREFIX, atomic_write

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Literal

    Kind = Literal["file", "dir", "symlink"]

INDEX_VERSION = 2
#: Seconds an unreferenced snapshot blob is kept (a concurrent build may still read it).
SNAPSHOT_GRACE_S = 24 * 3600
#: ``FICLONE`` (``_IOW(0x94, 9, int)``): a copy-on-write clone of a whole file.
_FICLONE = 0x40049409
_GLOB_RE = re.compile(r"(?<!\\)[*?\[]")

StatKey = tuple[int, int, int, int, int]


class Entry(Value):
    """One selected path: ``path`` in the context, ``dest`` where it lands below the
    copy's destination (``"."`` for a copied directory itself)."""

    path: str
    dest: str
    kind: Kind
    mode: int
    size: int = 0
    digest: str = ""
    target: str = ""

    def record(self) -> bytes:
        """What the selection digest covers of this entry, NUL-terminated fields (no
        field can hold a NUL, so the encoding is unambiguous)."""
        value = self.digest or self.target
        return os.fsencode(f"{self.dest}\0{self.kind}\0{self.mode:04o}\0{value}\0")


class Selection(Value):
    """The entries a copy source selects, and their digest."""

    src: str
    entries: tuple[Entry, ...]
    digest: str
    hashed: int
    """Files whose content was read for this selection (index misses)."""
    snapshot: str = ""
    """The directory of the context's snapshot blobs (``""``: none)."""

    def content_path(self, entry: Entry, context: Path) -> str:
        """Where a file entry's content as it was read is: its snapshot blob, or the
        context file itself when the blob is gone (its digest is checked when read)."""
        if self.snapshot and entry.digest:
            blob = os.path.join(self.snapshot, entry.digest.removeprefix("sha256:"))
            if os.path.exists(blob):
                return blob
        return str(context / entry.path)


#: Selections made by recent plans in this process, by (snapshot dir, digest).
_PLANNED: dict[tuple[str, str], Selection] = {}
_PLANNED_MAX = 128


def _remember(selection: Selection) -> None:
    key = (selection.snapshot, selection.digest)
    _PLANNED.pop(key, None)
    _PLANNED[key] = selection
    while len(_PLANNED) > _PLANNED_MAX:
        del _PLANNED[next(iter(_PLANNED))]


def planned_selection(context: Path, digest: str) -> Selection | None:
    """The selection of ``context`` with ``digest`` that a plan in this process made,
    if it is still remembered: what a copy step builds from."""
    return _PLANNED.get((str(snapshot_dir(context)), digest))


def _context_name(context: Path) -> tuple[str, str]:
    root = str(context.resolve())
    return root, sha256_bytes(os.fsencode(root)).removeprefix("sha256:")


def snapshot_dir(context: Path) -> Path:
    """Where the snapshot blobs of ``context`` live (nothing is created)."""
    _, name = _context_name(context)
    return Path(settings.home_dir()) / "cache" / "context" / f"{name}.files"


def hash_file(path: Path) -> str:
    """The sha256 digest of a regular file's content (a symlink is not followed)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        h = new_sha256()
        while chunk := stream.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode, st.st_ctime_ns)


class ContextIndex:
    """The stat-based index of one context directory's content digests."""

    def __init__(self, context: Path) -> None:
        root, name = _context_name(context)
        self.dir = Path(settings.private_dir("cache")) / "context"
        self.path = self.dir / f"{name}.json"
        self.snapshot = self.dir / f"{name}.files"
        self.root = root
        self._old: dict[str, tuple[StatKey, str]] = {}
        self._new: dict[str, tuple[StatKey, str]] = {}
        self._written_ns = 0
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return  # a missing or damaged index only costs a re-hash
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return
        if data.get("root") != self.root or not isinstance(data.get("entries"), dict):
            return
        self._written_ns = st.st_mtime_ns
        for rel, item in data["entries"].items():
            if isinstance(item, list) and len(item) == 6:
                size, mtime, ino, mode, ctime, digest = item
                key = (int(size), int(mtime), int(ino), int(mode), int(ctime))
                self._old[rel] = (key, str(digest))

    def lookup(self, rel: str, st: os.stat_result) -> str | None:
        """The recorded digest of ``rel`` if its stat is unchanged and not racily clean."""
        key = _stat_key(st)
        found = self._new.get(rel) or self._old.get(rel)
        if found is None or found[0] != key:
            return None
        if st.st_mtime_ns >= self._written_ns:
            self._dirty = True  # rewrite the index so that the entry is trusted next time
            self._new[rel] = found
            return None
        self._new[rel] = found
        return found[1]

    def record(self, rel: str, st: os.stat_result, digest: str) -> None:
        """Remember ``digest`` for ``rel`` at stat ``st``."""
        self._new[rel] = (_stat_key(st), digest)
        self._dirty = True

    def save(self, *, complete: bool = False) -> None:
        """Write the index atomically if anything changed.

        ``complete``: the whole context was walked, so paths not seen are gone and are
        dropped; otherwise entries of other selections are kept.
        """
        if not self._dirty and not (complete and set(self._old) - set(self._new)):
            return
        entries = dict(self._new) if complete else {**self._old, **self._new}
        body = {
            "version": INDEX_VERSION,
            "root": self.root,
            "entries": {rel: [*key, digest] for rel, (key, digest) in sorted(entries.items())},
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(body, separators=(",", ":")).encode(), self.dir)
        self._old, self._new, self._dirty = entries, {}, False
        self._drop_unreferenced({d.removeprefix("sha256:") for _, d in entries.values()})

    def _drop_unreferenced(self, referenced: set[str]) -> None:
        """Remove snapshot blobs no entry refers to, once past the grace period."""
        try:
            names = os.listdir(self.snapshot)
        except FileNotFoundError:
            return
        old = time.time() - SNAPSHOT_GRACE_S
        for name in names:
            if name in referenced:
                continue
            path = self.snapshot / name
            try:
                if os.lstat(path).st_mtime < old:
                    os.unlink(path)
            except FileNotFoundError:
                continue


def unused_snapshot_files(top: Path) -> list[Path]:
    """What ``prune`` and ``fsck --repair`` remove of the build contexts' snapshots in
    ``top`` (``$ENVKIT_HOME/cache/context``): the blobs of a snapshot that no entry of
    its context's index refers to (files changed or removed since, blobs of a killed
    build), and the whole snapshot with its index when the index is missing, damaged or
    of another version, or the context directory it describes is gone.

    Unlike :meth:`ContextIndex.save` (which spares unreferenced blobs for a day, as a
    concurrent build may read them) nothing is spared: call this with the store lock
    held exclusive, which no build runs beside (a build holds it shared)."""
    try:
        names = set(os.listdir(top))
    except OSError:
        return []
    found: list[Path] = []
    for name in sorted(names):
        if name.endswith(".files"):
            if f"{name.removesuffix('.files')}.json" not in names:
                found.append(top / name)  # no index: nothing refers to it
            continue
        if not name.endswith(".json") or name.startswith(TMP_PREFIX):
            continue
        snapshot = top / f"{name.removesuffix('.json')}.files"
        referenced = _referenced(top / name)
        if referenced is None:
            found.append(top / name)
            if snapshot.name in names:
                found.append(snapshot)
            continue
        with contextlib.suppress(OSError):
            found.extend(snapshot / n for n in sorted(os.listdir(snapshot)) if n not in referenced)
    return found


def _referenced(index: Path) -> set[str] | None:
    """The blob names an index file refers to; ``None`` when the index is unusable (or
    its context directory is gone), so its snapshot serves no build."""
    try:
        data = json.loads(index.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return None
    root, entries = data.get("root"), data.get("entries")
    if not isinstance(root, str) or not isinstance(entries, dict) or not os.path.isdir(root):
        return None
    return {
        str(item[5]).removeprefix("sha256:")
        for item in entries.values()
        if isinstance(item, list) and len(item) == 6
    }


def source_path(src: str) -> str:
    """A copy source as a cleaned context-relative path; refuses paths leaving the context.

    As in Docker, an absolute source is taken relative to the context root.
    """
    path = clean(src).lstrip("/") or "."
    if path == ".." or path.startswith("../"):
        raise ContextError(
            f"copy source {src!r} is outside the build context",
            hint="copy only files below the context directory, or widen the context",
        )
    return path


class ContextHasher:
    """Selects and hashes copy sources of one context, sharing its index across copies.

    Without ``use_index`` nothing is written: files are hashed, not kept in the snapshot
    (a copy then reads the context files again and checks their digests).

    ``dockerfile``: the copies are a Dockerfile's, so ``<dockerfile>.dockerignore``
    applies when it exists (:func:`envkit.build.ignore.read_ignore_file`).
    """

    def __init__(
        self, context: Path, *, use_index: bool = True, dockerfile: Path | None = None
    ) -> None:
        self.context = Path(context)
        if not self.context.is_dir():
            raise ContextError(
                f"build context {self.context} is not a directory",
                hint="pass the directory holding the files to copy",
            )
        self.dockerfile = dockerfile
        self.index = ContextIndex(self.context) if use_index else None
        self.snapshot = snapshot_dir(self.context)
        self._snapshot = str(self.snapshot)
        self._root = str(self.context)
        self._home = _identity(settings.home_dir())
        self._walked_all = False
        self._hashed = 0

    def select(self, src: str, ignore: Sequence[str] = ()) -> Selection:
        """The entries ``src`` selects (``ignore`` adds patterns after the ignore file)."""
        matcher = context_matcher(self.context, ignore, self.dockerfile)
        path = source_path(src)
        if path == "." and not ignore:
            self._walked_all = True
        roots = self._glob(path, matcher) if _GLOB_RE.search(path) else [self._in_context(path)]
        if not roots:
            raise ContextError(
                f"copy source {src!r} matches no file in the build context {self.context}",
                hint="check the pattern, and the ignore files that may exclude the files",
            )
        self._hashed = 0
        entries: dict[str, Entry] = {}
        for root in roots:
            for entry in self._collect(root, matcher, src):
                entries[entry.dest] = entry
        ordered = tuple(entries[d] for d in sorted(entries))
        # One bytes object: a small context's records hash with the built-in SHA-256, so
        # a build that reads every digest from the index never imports hashlib (OpenSSL).
        digest = sha256_bytes(b"".join(entry.record() for entry in ordered))
        snapshot = str(self.snapshot) if self.index is not None else ""
        selection = Selection(src, ordered, digest, self._hashed, snapshot)
        _remember(selection)
        return selection

    def save(self) -> None:
        """Persist the index (no-op without one)."""
        if self.index is not None:
            self.index.save(complete=self._walked_all)

    # -- walking ---------------------------------------------------------------------

    def _glob(self, pattern: str, matcher: Matcher) -> list[str]:
        found = [""]
        for part in pattern.split("/"):
            if not _GLOB_RE.search(part):
                found = [_join(d, part) for d in found]
                continue
            compiled = Pattern.compile(part)
            nxt: list[str] = []
            for d in found:
                try:
                    names = sorted(os.listdir(self.context / self._in_context(d, last=True)))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                nxt.extend(_join(d, n) for n in names if compiled.match(n))
            found = nxt
        # the matches, their directories resolved inside the context (see _in_context)
        return [
            real
            for p in found
            if os.path.lexists(self.context / (real := self._in_context(p)))
            and not matcher.excluded(p)
            and not self._in_home(p)
        ]

    def _in_context(self, rel: str, *, last: bool = False) -> str:
        """``rel`` with the symlinks of its directories (and of its last part with
        ``last``) resolved inside the context, as BuildKit resolves them: an absolute
        target is taken from the context root, and none leads out of it (a repository's
        ``keys -> ~/.ssh`` must not copy the host's keys)."""
        from envkit.runtime.rootfs import secure_join  # lazy: sources with a directory

        head, _, tail = rel.rpartition("/") if not last else (rel, "", "")
        if not head or head == ".":
            return rel
        try:
            resolved = os.path.relpath(secure_join(str(self.context), head), self.context)
        except RuntimeError_:
            raise ContextError(
                f"copy source {rel!r}: too many symbolic links in the build context",
                hint="fix the symlink loop",
            ) from None
        return _join("" if resolved == "." else resolved, tail) if tail else resolved

    def _in_home(self, rel: str) -> bool:
        """Whether ``rel`` is the envkit home or inside it."""
        if self._home is None:
            return False
        parts = rel.split("/")
        for i in range(len(parts)):
            try:
                st = os.lstat(self.context / "/".join(parts[: i + 1]))
            except OSError:
                return False
            if (st.st_dev, st.st_ino) == self._home:
                return True
        return False

    def _collect(self, root: str, matcher: Matcher, src: str) -> Iterator[Entry]:
        full = self.context / root
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            raise ContextError(
                f"copy source {src!r}: {root} is not in the build context {self.context}",
                hint="check the path (relative to the context directory)",
            ) from None
        flags: ParentMatches | None = None
        if root != "." and self._in_home(root):
            raise ContextError(
                f"copy source {src!r}: {root} is the envkit store (ENVKIT_HOME), which is "
                "never part of a build context",
                hint="set ENVKIT_HOME outside the project, or copy other files",
            )
        if root != ".":
            excluded, flags = matcher.excluded_under(root, None)
            if excluded and not (stat.S_ISDIR(st.st_mode) and matcher.may_reinclude_below(root)):
                raise ContextError(
                    f"copy source {src!r}: {root} is excluded by the ignore rules",
                    hint="remove it from .envkitignore/.dockerignore or the copy's ignore=",
                )
        if not stat.S_ISDIR(st.st_mode):
            yield self._entry(root, root.rsplit("/", 1)[-1], st)
            return
        yield self._entry(root, ".", st)
        yield from self._walk(root, "", matcher, flags)

    def _walk(
        self, rel_dir: str, dest_dir: str, matcher: Matcher, flags: ParentMatches | None
    ) -> Iterator[Entry]:
        with os.scandir(self.context / rel_dir) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            rel = _join("" if rel_dir == "." else rel_dir, child.name)
            dest = _join(dest_dir, child.name)
            st = child.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir and (st.st_dev, st.st_ino) == self._home:
                continue  # the envkit store is never part of a context
            child_flags: ParentMatches | None = None
            if matcher:
                excluded, child_flags = matcher.excluded_under(rel, flags)
                if excluded:
                    if is_dir and matcher.may_reinclude_below(rel):
                        # Docker selects an excluded directory holding re-included files,
                        # with its own mode, before them.
                        inner = self._walk(rel, dest, matcher, child_flags)
                        first = next(inner, None)
                        if first is not None:
                            yield self._entry(rel, dest, st)
                            yield first
                            yield from inner
                    continue
            if is_dir:
                yield self._entry(rel, dest, st)
                yield from self._walk(rel, dest, matcher, child_flags)
            else:
                yield self._entry(rel, dest, st)

    def _entry(self, rel: str, dest: str, st: os.stat_result) -> Entry:
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            return Entry(rel, dest, "dir", mode)
        if stat.S_ISLNK(st.st_mode):
            return Entry(rel, dest, "symlink", mode, target=os.readlink(self.context / rel))
        if not stat.S_ISREG(st.st_mode):
            raise ContextError(
                f"{self.context / rel}: not a regular file, directory or symlink",
                hint="device nodes, sockets and FIFOs cannot be copied; add it to the ignore file",
            )
        if self.index is None:
            self._hashed += 1
            return Entry(rel, dest, "file", mode, st.st_size, hash_file(self.context / rel))
        digest = self.index.lookup(rel, st)
        if digest is None:
            digest = keep_file(f"{self._root}/{rel}", self._snapshot)
            self._hashed += 1
            self.index.record(rel, st, digest)
        return Entry(rel, dest, "file", mode, st.st_size, digest)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


#: Devices (of snapshot directories) where a reflink clone failed: not tried again.
_NO_CLONE: set[int] = set()


def keep_file(path: str | os.PathLike[str], snapshot: str | os.PathLike[str]) -> str:
    """Hash a regular file and keep its content as read in ``snapshot/<hex>``.

    One read of the file: a reflink clone is hashed where the file system makes one,
    else the content is hashed while it is copied. The blob is written beside its final
    name and renamed (a killed build leaves a ``tmp-ctx-<pid>-*`` file that prune and
    the next build remove), but not fsynced: it is a cache, and a damaged one is caught
    by the digest check of the copy that reads it.
    """
    blobs = os.fspath(snapshot)
    tmp = f"{os.path.dirname(blobs)}/{TMP_PREFIX}ctx-{os.getpid()}-{os.urandom(8).hex()}"
    src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            os.makedirs(blobs, exist_ok=True)
            out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            digest = _clone_and_hash(src, out) or _copy_and_hash(src, out)
            blob = f"{blobs}/{digest.removeprefix('sha256:')}"
            try:
                os.rename(tmp, blob)
            except FileNotFoundError:
                os.makedirs(blobs, exist_ok=True)
                os.rename(tmp, blob)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        finally:
            os.close(out)
    finally:
        os.close(src)
    return digest


def _clone_and_hash(src: int, out: int) -> str:
    device = os.fstat(out).st_dev
    if device in _NO_CLONE:
        return ""
    try:
        fcntl.ioctl(out, _FICLONE, src)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM):
            _NO_CLONE.add(device)
            return ""
        raise
    h = new_sha256()
    offset = 0
    while chunk := os.pread(out, CHUNK, offset):
        h.update(chunk)
        offset += len(chunk)
    return "sha256:" + h.hexdigest()


def _copy_and_hash(src: int, out: int) -> str:
    h = new_sha256()
    while chunk := os.read(src, CHUNK):
        h.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view) :]
    return "sha256:" + h.hexdigest()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent and parent != "." else name


def hash_selection(
    context: Path, src: str = ".", ignore: Sequence[str] = (), *, use_index: bool = True
) -> Selection:
    """Select and hash ``src`` in ``context`` once, updating the context's index."""
    hasher = ContextHasher(context, use_index=use_index)
    selection = hasher.select(src, ignore)
    hasher.save()
    return selection
