"""The built-in volume backends: ``local`` (a directory under ``$ENVKIT_HOME``, the
default) and ``tmpfs`` (memory, size-limited, private to each container)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from envkit.errors import SpecError, VolumeError, VolumeNotFoundError
from envkit.plugins import hookimpl
from envkit.plugins.directory_backend import NAME_RE, DirectoryBackend, check_name
from envkit.plugins.interfaces import (
    BackendCapabilities,
    MountSource,
    SnapshotInfo,
    VolumeBackend,
    VolumeInfo,
)
from envkit.plugins.overrides import override
from envkit.settings import private_dir

_SIZE_RE = re.compile(r"^(\d+)([kmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class LocalVolumes(DirectoryBackend):
    """Volumes as plain directories: ``$ENVKIT_HOME/volumes/<name>/_data``; snapshots in
    ``$ENVKIT_HOME/volume-snapshots``. Takes no options."""

    name = "local"


def parse_size(value: str) -> int:
    """``"64m"`` as bytes (suffixes k, m, g; powers of 1024)."""
    match = _SIZE_RE.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise SpecError(
            "Volume.options['size']",
            "expected a positive size like 512k, 64m or 1g",
            value=value,
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


class TmpfsVolumes(VolumeBackend):
    """Volumes in memory: each container that mounts one gets a fresh tmpfs of at most
    ``size`` bytes (option ``size``, default 64m; ``mode``, default 1777).

    An unprivileged user can mount a tmpfs only inside a mount namespace, so the
    container runtime mounts it (``mount`` returns ``kind="tmpfs"``): the data is
    private to that container and gone when it stops. The backend keeps only the
    volume's options (``$ENVKIT_HOME/tmpfs-volumes/<name>.json``); a stack removes its
    tmpfs volumes at ``down`` (they are not ``persistent``).
    """

    name = "tmpfs"
    default_size = "64m"

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        """Where the volumes' option files live."""
        if self._root is not None:
            return self._root
        return Path(private_dir("tmpfs-volumes"))

    def _file(self, volume: str) -> Path:
        return self.root / (check_name("Volume.name", volume) + ".json")

    @override
    def capabilities(self) -> BackendCapabilities:
        """Private to each container, not persistent, no host path, no snapshots;
        the size is enforced by the kernel."""
        return BackendCapabilities(
            shared=False, persistent=False, host_path=False, snapshots=False, size_limit=True
        )

    @override
    def validate(self, options: Mapping[str, str]) -> None:
        """Options ``size`` (``64m``) and ``mode`` (octal, ``1777``)."""
        unknown = sorted(set(options) - {"size", "mode"})
        if unknown:
            raise SpecError(
                "Volume.options",
                f"the tmpfs backend does not know option(s) {', '.join(unknown)}",
                hint="options it takes: size (like 64m), mode (octal, like 1777)",
            )
        if "size" in options:
            parse_size(options["size"])
        if "mode" in options:
            _parse_mode(options["mode"])

    @override
    def create(self, volume: str, options: Mapping[str, str]) -> None:
        """Record the volume's options (idempotent when they are the same)."""
        self.validate(options)
        path = self._file(volume)
        wanted = dict(sorted(options.items()))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmpfs.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(wanted, f)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        have = self._options(volume)
        if have != wanted:
            raise VolumeError(
                f"volume {volume!r} exists with other options ({have}, asked {wanted})",
                hint=f"remove it first (`envkit volume rm {volume}`) or keep its options",
            )

    def _options(self, volume: str) -> dict[str, str]:
        try:
            data = json.loads(self._file(volume).read_text())
        except FileNotFoundError:
            raise VolumeNotFoundError(
                f"no volume named {volume!r} in the tmpfs backend",
                hint="`envkit volume ls` lists the volumes; `envkit up` creates a stack's",
            ) from None
        except (OSError, ValueError) as exc:
            raise VolumeError(f"{self._file(volume)}: unreadable ({exc})") from None
        return {str(k): str(v) for k, v in data.items()}

    @override
    def remove(self, volume: str) -> None:
        """Forget the volume (its data died with the containers that used it)."""
        self._options(volume)
        self._file(volume).unlink(missing_ok=True)

    @override
    def mount(self, volume: str, mount_id: str) -> MountSource:
        """A fresh tmpfs of the volume's size and mode, for the runtime to mount."""
        options = self._options(volume)
        size = parse_size(options.get("size", self.default_size))
        return MountSource.tmpfs(size, _parse_mode(options.get("mode", "1777")))

    @override
    def unmount(self, volume: str, mount_id: str) -> None:
        """Nothing to do: the tmpfs goes with the container's mount namespace."""
        self._options(volume)

    @override
    def get(self, volume: str) -> VolumeInfo:
        """Name, backend and options; no host path, size unknown."""
        return VolumeInfo(volume, self.name, self._options(volume))

    @override
    def list(self) -> list[str]:
        """The volumes created and not removed."""
        try:
            names = [p.name[: -len(".json")] for p in self.root.glob("*.json")]
        except FileNotFoundError:
            return []
        return sorted(n for n in names if NAME_RE.match(n))

    @override
    def size(self, volume: str) -> int:
        """Unknown (-1): the data lives only inside containers."""
        self._options(volume)
        return -1

    @override
    def snapshot(self, volume: str, name: str) -> SnapshotInfo:
        """Not supported: there is no host copy of the data."""
        raise self._no_host_data(volume, "snapshot")

    @override
    def restore(self, volume: str, name: str) -> None:
        """Not supported: there is no host copy of the data."""
        raise self._no_host_data(volume, "restore")

    @override
    def mountpoint(self, volume: str) -> Path:
        """Not supported: a tmpfs volume has no host directory."""
        raise self._no_host_data(volume, "give a host directory for")

    def _no_host_data(self, volume: str, what: str) -> VolumeError:
        return VolumeError(
            f"the tmpfs backend cannot {what} volume {volume!r}: its data lives only "
            "inside each container",
            hint="use the local backend for data to keep, copy or snapshot",
        )


def _parse_mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise SpecError(
            "Volume.options['mode']", "expected an octal mode like 1777 or 0755", value=value
        )
    return mode


@hookimpl
def envkit_volume_backends() -> Sequence[VolumeBackend]:
    return [LocalVolumes(), TmpfsVolumes()]
