"""envkit-oci-volumes: volumes kept on this machine whose snapshots are OCI artifacts.

``Volume("seed", backend="oci", options={"repository": "registry.example:5000/ci/seed",
"seed": "v1"})`` is a local directory volume that, when first created, is filled from the
artifact ``registry.example:5000/ci/seed:v1``; ``snapshot(volume, "v2")`` pushes its data
as ``...:v2`` so that other machines (CI runners) start from the same data.
"""

from __future__ import annotations

from envkit_oci_volumes.artifact import ARTIFACT_TYPE, CONFIG_MEDIA_TYPE
from envkit_oci_volumes.backend import OciVolumes

__all__ = ["ARTIFACT_TYPE", "CONFIG_MEDIA_TYPE", "OciVolumes"]
