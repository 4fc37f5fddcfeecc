"""The built-in ``local`` volume backend: a directory per volume under ``$ENVKIT_HOME``."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from envkit.errors import EnvkitError, SpecError
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import VolumeBackend

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class LocalVolumes:
    """Volumes as plain directories: ``$ENVKIT_HOME/volumes/<name>/_data``."""

    name = "local"

    def _dir(self, volume: str) -> Path:
        from envkit.settings import home

        if not _NAME_RE.match(volume):
            raise SpecError("Volume.name", "not a valid volume name", value=volume)
        return home() / "volumes" / volume

    def create(self, volume: str, options: Mapping[str, str]) -> None:
        if options:
            raise SpecError(
                f"Volume({volume!r}).options",
                "the local backend takes no options",
                value=dict(options),
            )
        (self._dir(volume) / "_data").mkdir(parents=True, exist_ok=True)

    def remove(self, volume: str) -> None:
        path = self._dir(volume)
        if not path.exists():
            raise EnvkitError(f"no volume named {volume!r}")
        # A volume written by a container may hold dirs its owner made read-only.
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o700)
        shutil.rmtree(path)

    def mountpoint(self, volume: str) -> Path:
        return self._dir(volume) / "_data"

    def list(self) -> list[str]:
        from envkit.settings import home

        base = home() / "volumes"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / "_data").is_dir())


@hookimpl
def envkit_volume_backends() -> Sequence[VolumeBackend]:
    return [LocalVolumes()]
