"""``envkit.lock``: the manifest digest each unpinned base reference was resolved to.

An unpinned base (``Image.from_("python:3.11-slim")``) is resolved once, to the digest
of the image the local store holds under that name or, when it has none, the digest the
registry serves, and recorded in the lock beside the stack file. Every later build, on
any machine, uses that digest (``name@sha256:...``, pulled by digest when missing) until
``envkit pull --update`` resolves the names again. Pinned references are used as they are
and never recorded.

The file is JSON, keys sorted, one entry per normalised reference::

    {
      "images": {
        "docker.io/library/busybox:latest": {
          "digest": "sha256:...",
          "platform": "linux/amd64"
        }
      },
      "version": 1
    }

``platform`` is the one chosen when the digest is a multi-platform index.
"""

from __future__ import annotations

import json
from pathlib import Path

from envkit.errors import ReferenceError_, StackFileError
from envkit.oci.reference import parse
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

    from envkit.oci.types import Platform
    from envkit.store.store import Store

LOCK_NAME = "envkit.lock"
FORMAT_VERSION = 1


class LockEntry(Value):
    """What one reference is locked to: a manifest (or index) digest, for a platform."""

    digest: str
    platform: str


def platform_text(platform: Platform) -> str:
    """``os/arch[/variant]``."""
    return "/".join(p for p in (platform.os, platform.architecture, platform.variant) if p)


class LockFile:
    """The entries of one ``envkit.lock``; :meth:`save` writes them back when changed."""

    def __init__(self, path: Path, entries: dict[str, LockEntry] | None = None) -> None:
        self.path = path
        self.entries: dict[str, LockEntry] = dict(entries or {})
        self._saved = dict(self.entries)

    @classmethod
    def beside(cls, file: Path) -> LockFile:
        """The lock of the directory of ``file`` (a stack or image file), loaded if present."""
        return cls.load(file.absolute().parent / LOCK_NAME)

    @classmethod
    def load(cls, path: Path) -> LockFile:
        """Read ``path``; a missing file is an empty lock, a malformed one an error."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise StackFileError(f"{path}: cannot read the lock file: {exc.strerror}") from None
        return cls(path, _parse(path, text))

    @property
    def changed(self) -> bool:
        """Whether the entries differ from the file's."""
        return self.entries != self._saved

    def get(self, ref: str) -> LockEntry | None:
        """The entry of ``ref`` (normalised here), if locked."""
        return self.entries.get(str(parse(ref)))

    def set(self, ref: str, entry: LockEntry) -> None:
        """Lock ``ref`` (normalised here) to ``entry``."""
        self.entries[str(parse(ref))] = entry

    def dumps(self) -> str:
        """The file's content: sorted JSON, one entry per reference."""
        images = {
            ref: {"digest": e.digest, "platform": e.platform}
            for ref, e in sorted(self.entries.items())
        }
        return json.dumps({"version": FORMAT_VERSION, "images": images}, indent=2, sort_keys=True)

    def save(self) -> bool:
        """Write the file atomically if the entries changed; whether it was written."""
        if not self.changed:
            return False
        # lazy: only when the lock changed (downward)
        from envkit.oci.archive_write import atomic_output

        with atomic_output(self.path) as out:
            out.write((self.dumps() + "\n").encode())
        self._saved = dict(self.entries)
        return True

    def resolver(self, store: Store, *, update: bool = False) -> LockResolver:
        """A build :data:`~envkit.build.keys.Resolver` answering from this lock, see
        :class:`LockResolver`."""
        return LockResolver(self, store, update=update)


def _parse(path: Path, text: str) -> dict[str, LockEntry]:
    hint = f"fix it, or delete {path.name} and build again to lock the bases anew"
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise StackFileError(f"{path}: the lock file is not JSON: {exc}", hint=hint) from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise StackFileError(
            f"{path}: not an envkit lock file of version {FORMAT_VERSION}", hint=hint
        )
    images = data.get("images", {})
    if not isinstance(images, dict):
        raise StackFileError(f"{path}: 'images' is not an object", hint=hint)
    out: dict[str, LockEntry] = {}
    for ref, entry in images.items():
        digest = entry.get("digest") if isinstance(entry, dict) else None
        platform = entry.get("platform", "") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise StackFileError(f"{path}: entry {ref!r} has no sha256 digest", hint=hint)
        if not isinstance(platform, str):
            raise StackFileError(f"{path}: entry {ref!r} has a bad platform", hint=hint)
        try:
            out[str(parse(ref))] = LockEntry(digest, platform)
        except ReferenceError_ as exc:
            raise StackFileError(f"{path}: {exc.message}", hint=hint) from None
    return out


class LockResolver:
    """Maps base references to the digests a build uses, through a :class:`LockFile`.

    A pinned reference resolves as without a lock (to its digest when the store has it).
    An unpinned one resolves to its lock entry; without one (or always, with
    ``update``), to the image the store holds under that name, else the one its
    registry serves (pulled now), and the lock records it. :attr:`pins` maps each
    reference resolved through the lock to its digest, for the build to provide exactly
    that image.
    """

    def __init__(self, lock: LockFile, store: Store, *, update: bool = False) -> None:
        self.lock = lock
        self.store = store
        self.update = update
        self.pins: dict[str, str] = {}

    def __call__(self, ref: str) -> str | None:
        parsed = parse(ref)
        if parsed.digest is not None:
            # lazy: keys loads the spec objects, which `envkit pull REF` does not need
            from envkit.build.keys import store_resolver

            return store_resolver(self.store)(ref)
        name = str(parsed)
        if name in self.pins:
            return self.pins[name]
        entry = None if self.update else self.lock.get(name)
        if entry is None:
            entry = self._resolve(name)
            self.lock.set(name, entry)
        self.pins[name] = entry.digest
        return entry.digest

    def pinned(self, ref: str) -> str | None:
        """The digest ``ref`` was resolved to by this resolver, if it was."""
        return self.pins.get(str(parse(ref)))

    def _resolve(self, name: str) -> LockEntry:
        from envkit.store.graph import host_platform  # lazy: only unpinned bases (downward)

        platform = platform_text(host_platform())
        if self.update:
            from envkit.registry.pull import pull  # lazy: requests only with --pull (downward)

            return LockEntry(pull(name, self.store).descriptor.digest, platform)
        from envkit.build.listeners import stored_ref  # lazy: only unpinned bases

        desc = stored_ref(self.store, name)
        if desc is None:
            # lazy: pluggy only when the store lacks it
            from envkit.plugins.manager import get_manager

            desc = get_manager().image_source("ref").provide({"ref": name}, self.store)
        return LockEntry(desc.digest, platform)


class LockChange(Value):
    """One reference of :func:`update_lock`: the digest before (None: new) and after."""

    ref: str
    old: str | None
    new: str


def update_lock(file: Path, store: Store) -> tuple[LockFile, list[LockChange]]:
    """Resolve again, at their registries, every reference of the lock beside ``file``
    and every unpinned base of the stack ``file`` builds (when ``file`` exists); write
    the lock atomically if a digest moved. Returns the lock and one change per reference."""
    from envkit.build.keys import plan  # lazy: as store_resolver above

    lock = LockFile.beside(file)
    before = dict(lock.entries)
    resolver = lock.resolver(store, update=True)
    for ref in sorted(before):
        resolver(ref)
    if file.is_file():
        from envkit.spec.loader import load_stack  # lazy: only with a stack file (downward)

        stack = load_stack(file)
        context = stack.base_dir or file.absolute().parent
        for service in stack.services:
            image = service.image
            if image.steps or image.base.kind != "ref":  # plain refs are not built
                plan(image, context, resolve=resolver)
    lock.save()
    changes = [
        LockChange(ref, before[ref].digest if ref in before else None, entry.digest)
        for ref, entry in sorted(lock.entries.items())
    ]
    return lock, changes
