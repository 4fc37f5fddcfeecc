"""A volume backend over plain directories, for the built-in ``local`` backend and for
plugins that keep data on this machine and add something (a seed, a remote copy).

Layout under ``root`` (one directory per volume, docker's layout)::

    <root>/<volume>/_data          the data, bind-mounted into containers
    <root>/<volume>/options.json   the options the volume was created with

Snapshots are deterministic zstd layer tars (:func:`envkit.oci.layer_writer.write_layer`:
the same data gives the same digest on any machine) in ``<snapshots>/<volume>/<name>.tar.zst``.
A restore extracts one safely (nothing lands outside the volume, whatever the tar holds)
into a fresh sibling of ``_data`` and swaps it in; a crash between the two renames of the
swap is repaired on the next access.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from envkit.errors import EnvkitError, SpecError, VolumeError, VolumeNotFoundError
from envkit.oci.tarsafe import remove_at
from envkit.plugins.interfaces import (
    BackendCapabilities,
    MountSource,
    SnapshotInfo,
    VolumeBackend,
    VolumeInfo,
)
from envkit.plugins.overrides import override
from envkit.settings import private_dir

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
DATA = "_data"
OPTIONS = "options.json"
_OLD = ".old-"
_NEW = ".new-"
SNAPSHOT_SUFFIX = ".tar.zst"


def check_name(what: str, name: str) -> str:
    """``name`` if it is a valid volume or snapshot name, else a :class:`SpecError`."""
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 128:
        raise SpecError(
            what,
            "not a valid name",
            value=name,
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    return name


def tree_size(path: Path) -> int:
    """Apparent bytes of the files under ``path``; hard links are counted once and
    symlinks are not followed."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue  # removed by a container meanwhile
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def write_snapshot(data: Path, dest: Path) -> tuple[str, int]:
    """Write the tree ``data`` to ``dest`` (atomically) as a deterministic zstd layer tar;
    returns its digest and size."""
    from envkit.oci.layer_writer import write_layer  # lazy for start-up: zstd, downward

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            info = write_layer(data, out, compression="zstd")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return info.digest, info.size


def restore_tree(stream: BinaryIO, volume_dir: Path) -> None:
    """Replace ``volume_dir/_data`` by the layer tar in ``stream``, all or nothing.

    The tar is extracted safely into a fresh sibling, which then takes ``_data``'s place.
    Containers that have the volume mounted keep seeing the old data until restarted.
    """
    from envkit.oci.layer_reader import extract_layer_atomic  # lazy for start-up: downward

    data = volume_dir / DATA
    new = Path(tempfile.mkdtemp(prefix=_NEW, dir=volume_dir))
    os.rmdir(new)  # extract_layer_atomic wants a path that does not exist yet
    try:
        extract_layer_atomic(stream, new)
    except EnvkitError as exc:
        raise VolumeError(
            f"volume {volume_dir.name!r}: the snapshot cannot be restored: {exc.message}",
            hint=exc.hint,
        ) from None
    old = volume_dir / f"{_OLD}{new.name[len(_NEW) :]}"
    os.rename(data, old)
    os.rename(new, data)
    fd = os.open(volume_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
        remove_at(fd, old.name)
    finally:
        os.close(fd)


class DirectoryBackend(VolumeBackend):
    """Volumes as directories under ``root``; snapshots as files under ``snapshots``.

    Subclasses set :attr:`name`, list their options in :attr:`option_names` and check
    their values in :meth:`check_option`; they may override :meth:`snapshot` and
    :meth:`restore` to keep snapshots elsewhere (a registry).
    """

    name = "directory"
    #: Options :meth:`validate` accepts.
    option_names: frozenset[str] = frozenset()

    def __init__(self, root: Path | None = None, snapshots: Path | None = None) -> None:
        self._root = root
        self._snapshots = snapshots

    # -- where things are ------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The directory holding one directory per volume."""
        if self._root is not None:
            return self._root
        return Path(private_dir("volumes"))

    @property
    def snapshots_root(self) -> Path:
        """The directory holding the snapshots, one directory per volume."""
        if self._snapshots is not None:
            return self._snapshots
        if self._root is None:
            return Path(private_dir("volume-snapshots"))
        return self.root.parent / "volume-snapshots"

    def _dir(self, volume: str) -> Path:
        return self.root / check_name("Volume.name", volume)

    def _existing(self, volume: str) -> Path:
        path = self._dir(volume)
        data = path / DATA
        if not data.is_dir():
            self._repair(path)
        if not data.is_dir():
            raise VolumeNotFoundError(
                f"no volume named {volume!r} in the {self.name} backend",
                hint="`envkit volume ls` lists the volumes; `envkit up` creates a stack's",
            )
        return path

    @staticmethod
    def _repair(path: Path) -> None:
        """Finish a restore that was killed between its two renames."""
        with contextlib.suppress(OSError):
            olds = sorted(p for p in path.iterdir() if p.name.startswith(_OLD))
            if olds:
                os.rename(olds[0], path / DATA)

    # -- the backend interface --------------------------------------------------------
    @override
    def capabilities(self) -> BackendCapabilities:
        """Shared, persistent host directories with snapshots; no size limit."""
        return BackendCapabilities()

    @override
    def validate(self, options: Mapping[str, str]) -> None:
        """Reject options this backend does not know, then check each value."""
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            known = ", ".join(sorted(self.option_names)) or "none"
            raise SpecError(
                "Volume.options",
                f"the {self.name} backend does not know option(s) {', '.join(unknown)}",
                hint=f"options it takes: {known}",
            )
        for key, value in options.items():
            self.check_option(key, value)

    def check_option(self, key: str, value: str) -> None:
        """Raise :class:`SpecError` when ``value`` is not valid for option ``key``."""

    @override
    def create(self, volume: str, options: Mapping[str, str]) -> None:
        """Create the volume's directory and record its options; an existing volume
        must have been created with the same options."""
        path = self._dir(volume)
        self.validate(options)
        wanted = dict(sorted(options.items()))
        try:
            (path / DATA).mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".options.", dir=path)
            with os.fdopen(fd, "w") as f:
                json.dump(wanted, f)
            try:
                os.link(tmp, path / OPTIONS)  # first writer wins, as O_EXCL would
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        except OSError as exc:
            raise VolumeError(
                f"cannot create volume {volume!r} in {self.root}: {exc.strerror}",
                hint="check that $ENVKIT_HOME is writable",
            ) from None
        have = self.options(volume)
        if have != wanted:
            raise VolumeError(
                f"volume {volume!r} exists with other options ({have}, asked {wanted})",
                hint=f"remove it first (`envkit volume rm {volume}`) or keep its options",
            )

    def options(self, volume: str) -> dict[str, str]:
        """The options ``volume`` was created with."""
        path = self._existing(volume) / OPTIONS
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}  # made before options were recorded
        except (OSError, ValueError) as exc:
            raise VolumeError(f"{path}: unreadable ({exc})") from None
        return {str(k): str(v) for k, v in data.items()}

    @override
    def remove(self, volume: str) -> None:
        """Delete the volume's directory (its snapshots stay)."""
        path = self._existing(volume)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # remove_at makes read-only directories a container left writable first.
            remove_at(fd, path.name)
        finally:
            os.close(fd)

    @override
    def mount(self, volume: str, mount_id: str) -> MountSource:
        """The volume's data directory, bind-mounted as is."""
        return MountSource.bind(self._existing(volume) / DATA)

    @override
    def unmount(self, volume: str, mount_id: str) -> None:
        """Nothing to undo for a bind mount; checks the volume still exists."""
        self._existing(volume)

    @override
    def get(self, volume: str) -> VolumeInfo:
        """Name, backend, options, data directory and size."""
        path = self._existing(volume)
        return VolumeInfo(
            volume, self.name, self.options(volume), str(path / DATA), tree_size(path / DATA)
        )

    @override
    def list(self) -> list[str]:
        """Every directory under :attr:`root` holding a ``_data`` directory."""
        try:
            entries = sorted(self.root.iterdir())
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            if not (entry / DATA).is_dir():
                self._repair(entry)
            if (entry / DATA).is_dir() and NAME_RE.match(entry.name):
                names.append(entry.name)
        return names

    @override
    def size(self, volume: str) -> int:
        """Apparent bytes of the volume's files."""
        return tree_size(self._existing(volume) / DATA)

    @override
    def mountpoint(self, volume: str) -> Path:
        """``<root>/<volume>/_data`` (whether or not it exists yet)."""
        return self._dir(volume) / DATA

    def snapshot_path(self, volume: str, name: str) -> Path:
        """Where snapshot ``name`` of ``volume`` is kept."""
        check_name("snapshot name", name)
        return self.snapshots_root / check_name("Volume.name", volume) / (name + SNAPSHOT_SUFFIX)

    @override
    def snapshot(self, volume: str, name: str) -> SnapshotInfo:
        """Write the volume's data as ``<snapshots>/<volume>/<name>.tar.zst``."""
        path = self._existing(volume)
        dest = self.snapshot_path(volume, name)
        try:
            digest, size = write_snapshot(path / DATA, dest)
        except EnvkitError as exc:
            raise VolumeError(
                f"cannot snapshot volume {volume!r}: {exc.message}", hint=exc.hint
            ) from None
        return SnapshotInfo(volume, name, digest, size, str(dest))

    @override
    def restore(self, volume: str, name: str) -> None:
        """Replace the volume's data with the snapshot file's."""
        path = self._existing(volume)
        source = self.snapshot_path(volume, name)
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise VolumeError(
                f"volume {volume!r} has no snapshot named {name!r}",
                hint=f"snapshots are kept in {source.parent}",
            ) from None
        with stream:
            restore_tree(stream, path)
