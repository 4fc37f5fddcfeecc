"""Build-context hashing: which files a copy reads, and one digest for all of them.

:class:`ContextHasher` walks a context directory, applies its ignore rules
(:mod:`envkit.build.ignore`) and a copy's source selection (a file, a directory, or a glob
such as ``src/*.py``), and hashes what it selected. The digest of a selection covers each
entry's path where it lands, its type, permission bits, symlink target and content: not
mtimes, owners or inode numbers, so the same tree gives the same digest on any machine.

Content digests are kept in a stat-based index, as git's index does:
``$ENVKIT_HOME/cache/context/<sha256 of the absolute context path>.json`` maps each
relative path to ``(size, mtime_ns, ino, mode, ctime_ns)`` and its digest, so a file
whose stat is unchanged is not read again. A file modified in the same clock tick as the
index was written could keep its stat; such an entry (mtime not older than the index
file's) is "racily clean" and is hashed again next time, as git does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envkit import settings
from envkit.build.ignore import Matcher, ParentMatches, Pattern, clean, context_matcher
from envkit.errors import EnvkitError
from envkit.oci.digest import CHUNK
from envkit.store.atomic import atomic_write

INDEX_VERSION = 1
_GLOB_RE = re.compile(r"(?<!\\)[*?\[]")

Kind = Literal["file", "dir", "symlink"]
StatKey = tuple[int, int, int, int, int]


class ContextError(EnvkitError):
    """A copy source is missing from the build context, excluded, or outside it."""


@dataclass(frozen=True)
class Entry:
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


@dataclass(frozen=True)
class Selection:
    """The entries a copy source selects, and their digest."""

    src: str
    entries: tuple[Entry, ...]
    digest: str
    hashed: int
    """Files whose content was read for this selection (index misses)."""


def hash_file(path: Path) -> str:
    """The sha256 digest of a regular file's content (a symlink is not followed)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as stream:
        h = hashlib.sha256()
        while chunk := stream.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode, st.st_ctime_ns)


class ContextIndex:
    """The stat-based index of one context directory's content digests."""

    def __init__(self, context: Path) -> None:
        root = str(context.resolve())
        name = hashlib.sha256(os.fsencode(root)).hexdigest()
        self.dir = Path(settings.private_dir("cache")) / "context"
        self.path = self.dir / f"{name}.json"
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
    """Selects and hashes copy sources of one context, sharing its index across copies."""

    def __init__(self, context: Path, *, use_index: bool = True) -> None:
        self.context = Path(context)
        if not self.context.is_dir():
            raise ContextError(
                f"build context {self.context} is not a directory",
                hint="pass the directory holding the files to copy",
            )
        self.index = ContextIndex(self.context) if use_index else None
        self._walked_all = False
        self._hashed = 0

    def select(self, src: str, ignore: Sequence[str] = ()) -> Selection:
        """The entries ``src`` selects (``ignore`` adds patterns after the ignore file)."""
        matcher = context_matcher(self.context, ignore)
        path = source_path(src)
        if path == "." and not ignore:
            self._walked_all = True
        roots = self._glob(path, matcher) if _GLOB_RE.search(path) else [path]
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
        h = hashlib.sha256()
        for entry in ordered:
            h.update(entry.record())
        return Selection(src, ordered, "sha256:" + h.hexdigest(), self._hashed)

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
                    names = sorted(os.listdir(self.context / (d or ".")))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                nxt.extend(_join(d, n) for n in names if compiled.match(n))
            found = nxt
        return [p for p in found if os.path.lexists(self.context / p) and not matcher.excluded(p)]

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
            child_flags: ParentMatches | None = None
            if matcher:
                excluded, child_flags = matcher.excluded_under(rel, flags)
                if excluded:
                    if is_dir and matcher.may_reinclude_below(rel):
                        yield from self._walk(rel, dest, matcher, child_flags)
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
        digest = self.index.lookup(rel, st) if self.index is not None else None
        if digest is None:
            digest = hash_file(self.context / rel)
            self._hashed += 1
            if self.index is not None:
                self.index.record(rel, st, digest)
        return Entry(rel, dest, "file", mode, st.st_size, digest)


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
