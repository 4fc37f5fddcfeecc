"""The image a build has made so far: its layers and its config document.

Each executed step turns one :class:`ImageState` into the next; the cache stores the
state after each step, so a cached step needs nothing else to continue from. Timestamps
come from :func:`build_epoch` (``SOURCE_DATE_EPOCH``, else 0), so the same inputs give
the same config and manifest digests on any machine and at any time.
"""

from __future__ import annotations

import os
import time

from envkit.oci.digest import sha256_bytes
from envkit.oci.types import (
    MT_OCI_CONFIG,
    MT_OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    canonical_json,
)
from envkit.records import Value, field

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any


def build_epoch() -> int:
    """Seconds since 1970 every timestamp of a build is clamped to: ``SOURCE_DATE_EPOCH``
    when set, else 0 (reproducible by default, as ``docker buildx --source-date-epoch``)."""
    if not os.environ.get("SOURCE_DATE_EPOCH", "").strip():
        return 0  # without loading the layer writer (tarfile, compressors)
    from envkit.oci.layer_writer import source_date_epoch_from_env

    value = source_date_epoch_from_env()
    return 0 if value is None else value


def rfc3339(epoch: int) -> str:
    """``epoch`` as the ``created`` field of an image config (UTC, seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class ImageState(Value):
    """Layers (manifest descriptors, base first) and the full config document."""

    layers: tuple[Descriptor, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scratch(cls) -> ImageState:
        """An empty image for the host's platform."""
        return cls((), ImageConfig.empty().raw)

    @property
    def settings(self) -> dict[str, Any]:
        """The config's ``config`` object (Env, Cmd, WorkingDir...)."""
        value = self.config.get("config")
        return value if isinstance(value, dict) else {}

    @property
    def diff_ids(self) -> list[str]:
        """The uncompressed digests of the layers, base first."""
        rootfs = self.config.get("rootfs") or {}
        return [str(d) for d in rootfs.get("diff_ids", [])]

    def with_settings(
        self, change: dict[str, Any], created_by: str, top: dict[str, Any] | None = None
    ) -> ImageState:
        """A copy with ``change`` merged into ``config`` (and ``top`` into the document,
        e.g. ``author``) and a history entry (no layer)."""
        raw = _clone(self.config)
        raw.update(top or {})
        settings = raw.setdefault("config", {})
        settings.update(change)
        _history(raw, created_by, empty=True)
        return ImageState(self.layers, raw)

    def with_layer(self, layer: Descriptor, diff_id: str, created_by: str) -> ImageState:
        """A copy with ``layer`` on top."""
        raw = _clone(self.config)
        rootfs = raw.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs.setdefault("type", "layers")
        rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), diff_id]
        _history(raw, created_by, empty=False)
        return ImageState((*self.layers, layer), raw)

    def finished(self) -> ImageState:
        """The state with ``created`` set from the build epoch (what gets stored)."""
        raw = _clone(self.config)
        raw["created"] = rfc3339(build_epoch())
        return ImageState(self.layers, raw)

    def config_bytes(self) -> bytes:
        """The config document, canonical JSON."""
        return canonical_json(self.config)

    def manifest(self) -> Manifest:
        """The OCI manifest of this state."""
        raw = self.config_bytes()
        desc = Descriptor(MT_OCI_CONFIG, sha256_bytes(raw), len(raw))
        return Manifest(config=desc, layers=self.layers, media_type=MT_OCI_MANIFEST)

    def to_json(self) -> dict[str, Any]:
        """JSON form, as cache entries store it."""
        return {"layers": [d.to_json() for d in self.layers], "config": self.config}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageState:
        """Inverse of :meth:`to_json`; raises KeyError/TypeError/ValueError when malformed."""
        layers = tuple(Descriptor.from_json(d) for d in data["layers"])
        config = data["config"]
        if not isinstance(config, dict):
            raise TypeError("config is not an object")
        return cls(layers, config)


def _clone(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists and scalars); faster than
    :func:`copy.deepcopy`, whose import alone costs a cached build a millisecond."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _history(raw: dict[str, Any], created_by: str, *, empty: bool) -> None:
    entry: dict[str, Any] = {"created": rfc3339(build_epoch()), "created_by": created_by}
    if empty:
        entry["empty_layer"] = True
    raw["history"] = [*raw.get("history", []), entry]
