"""The entry point: registers the ``oci`` volume backend with envkit."""

from __future__ import annotations

from collections.abc import Sequence

from envkit.plugins import VolumeBackend, hookimpl
from envkit_oci_volumes.backend import OciVolumes


@hookimpl
def envkit_volume_backends() -> Sequence[VolumeBackend]:
    return [OciVolumes()]
