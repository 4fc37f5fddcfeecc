"""OCI image-spec documents as small typed values.

Only the fields envkit uses are modelled. Every other field read from a document (a
manifest's ``subject`` and ``artifactType``, a descriptor's ``urls`` and ``data``, a
platform's ``os.version``, ...) is kept in ``extra`` and written back by ``to_json``, so
a document read and written again keeps all its fields. Serialisation is canonical
(sorted keys, no insignificant white space), so a document that was not canonical gets
new bytes: the store keeps the original bytes of what it pulls, and digests are taken of
those. ``extra`` takes no part in equality or the hash, as annotations do not.

An image config is checked when read (:meth:`ImageConfig.from_bytes`): the fields envkit
uses must have the types the image spec gives them (``Env`` a list of strings, ...), or
:class:`ImageConfigError` names the image (its config digest, the image id) and the field.
"""

from __future__ import annotations

import json

from envkit.errors import ImageConfigError
from envkit.oci.digest import sha256_bytes
from envkit.records import Value, field

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"

MANIFEST_TYPES = frozenset({MT_OCI_MANIFEST, MT_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MT_OCI_INDEX, MT_DOCKER_LIST})
LAYER_TYPES = frozenset(
    {
        MT_OCI_LAYER,
        MT_OCI_LAYER_GZIP,
        MT_OCI_LAYER_ZSTD,
        MT_DOCKER_LAYER,
        MT_DOCKER_LAYER_GZIP,
    }
)

#: Annotation holding a ref name in an OCI layout's index.json.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
#: Annotation docker/podman use for the full image name in an OCI archive.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, compact separators, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _extra(data: dict[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The fields of ``data`` a type does not model."""
    return {k: v for k, v in data.items() if k not in known}


def compression_of(media_type: str) -> str:
    """``"gzip"``, ``"zstd"`` or ``""`` for a layer media type."""
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip"):
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    return ""


class Platform(Value):
    """An OS and architecture an image is built for."""

    KNOWN = frozenset({"os", "architecture", "variant"})
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "linux")),
            architecture=str(data.get("architecture", "amd64")),
            variant=str(data.get("variant", "")),
            extra=_extra(data, cls.KNOWN),
        )


class Descriptor(Value):
    """A typed pointer to content: media type, digest and size (and, in an index, the
    platform). Annotations do not take part in equality or the hash."""

    KNOWN = frozenset({"mediaType", "digest", "size", "annotations", "platform"})
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    platform: Platform | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Fields not modelled: ``urls``, ``data``, ``artifactType``, ..."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.extra,
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        plat = data.get("platform")
        return cls(
            media_type=str(data["mediaType"]),
            digest=str(data["digest"]),
            size=int(data["size"]),
            annotations=dict(data.get("annotations") or {}),
            platform=Platform.from_json(plat) if isinstance(plat, dict) else None,
            extra=_extra(data, cls.KNOWN),
        )


class Manifest(Value):
    """An image manifest: one config and an ordered list of layers. Annotations do not
    take part in equality or the hash."""

    KNOWN = frozenset({"schemaVersion", "mediaType", "config", "layers", "annotations"})
    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = MT_OCI_MANIFEST
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Fields not modelled: ``subject``, ``artifactType``, ..."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.extra,
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            config=Descriptor.from_json(data["config"]),
            layers=tuple(Descriptor.from_json(d) for d in data.get("layers", [])),
            media_type=str(data.get("mediaType", MT_OCI_MANIFEST)),
            annotations=dict(data.get("annotations") or {}),
            extra=_extra(data, cls.KNOWN),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        return cls.from_json(json.loads(raw))


class Index(Value):
    """An image index: a list of manifests (per platform, or per ref in a layout).
    Annotations do not take part in equality or the hash."""

    KNOWN = frozenset({"schemaVersion", "manifests", "annotations"})
    manifests: tuple[Descriptor, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Fields not modelled: ``subject``, ``artifactType``, and the ``mediaType`` read
    (a Docker manifest list keeps its own)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": MT_OCI_INDEX,
            **self.extra,
            "schemaVersion": 2,
            "manifests": [m.to_json() for m in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Index:
        return cls(
            manifests=tuple(Descriptor.from_json(d) for d in data.get("manifests", [])),
            annotations=dict(data.get("annotations") or {}),
            extra=_extra(data, cls.KNOWN),
        )


class ImageConfig(Value):
    """The image configuration document (``application/vnd.oci.image.config.v1+json``).

    ``raw`` is the whole parsed document; the properties read the fields envkit uses.
    Build it with :meth:`from_json` / :meth:`to_bytes`; the digest of an image's config is
    the image id, as in docker.
    """

    raw: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        value = self.raw.get("config") or {}
        return value if isinstance(value, dict) else {}

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.raw.get("rootfs") or {}
        return [str(d) for d in rootfs.get("diff_ids", [])]

    @property
    def platform(self) -> Platform:
        return Platform(
            os=str(self.raw.get("os", "linux")),
            architecture=str(self.raw.get("architecture", "amd64")),
            variant=str(self.raw.get("variant", "")),
        )

    def to_bytes(self) -> bytes:
        return canonical_json(self.raw)

    @property
    def digest(self) -> str:
        return sha256_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, raw: bytes) -> ImageConfig:
        """Read a config document; raises :class:`ValueError` for bad JSON and
        :class:`ImageConfigError` for a field of the wrong type."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("image config is not a JSON object")
        problem = config_problem(data)
        if problem is not None:
            raise ImageConfigError(
                f"image {sha256_bytes(raw)}: its config is invalid: {problem}",
                hint="the image was written by a tool that broke the image spec; rebuild "
                "it, or pull a fixed version",
            )
        return cls(raw=data)

    @classmethod
    def empty(cls, platform: Platform | None = None) -> ImageConfig:
        """The config of a scratch image: no layers, no settings."""
        plat = platform or Platform()
        raw: dict[str, Any] = {
            "architecture": plat.architecture,
            "os": plat.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
        if plat.variant:
            raw["variant"] = plat.variant
        return cls(raw=raw)


#: Fields of a config's ``config`` object and the JSON type the image spec gives them
#: (``list[str]``: an array of strings; ``dict``: an object). ``null`` is accepted for all.
CONFIG_FIELD_TYPES: dict[str, str] = {
    "Env": "list[str]",
    "Cmd": "list[str]",
    "Entrypoint": "list[str]",
    "Shell": "list[str]",
    "OnBuild": "list[str]",
    "User": "str",
    "WorkingDir": "str",
    "StopSignal": "str",
    "Labels": "dict[str]",
    "ExposedPorts": "dict",
    "Volumes": "dict",
}


def config_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with the types of a config document's fields, or ``None``."""
    settings = data.get("config")
    if settings is not None and not isinstance(settings, dict):
        return f"'config' is {_json_kind(settings)}, not an object"
    for name, kind in CONFIG_FIELD_TYPES.items():
        value = (settings or {}).get(name)
        if value is None:
            continue
        problem = _type_problem(value, kind)
        if problem:
            return _at(f"config.{name}", problem)
    rootfs = data.get("rootfs")
    if rootfs is not None:
        if not isinstance(rootfs, dict):
            return f"'rootfs' is {_json_kind(rootfs)}, not an object"
        problem = _type_problem(rootfs.get("diff_ids") or [], "list[str]")
        if problem:
            return _at("rootfs.diff_ids", problem)
    return None


def _at(field: str, problem: str) -> str:
    return field + problem if problem.startswith("[") else f"{field} {problem}"


def _type_problem(value: Any, kind: str) -> str:
    if kind == "str":
        return "" if isinstance(value, str) else f"is {_json_kind(value)}, not a string"
    if kind.startswith("list"):
        if not isinstance(value, list):
            return f"is {_json_kind(value)}, not a list of strings"
        for i, item in enumerate(value):
            if not isinstance(item, str):
                return f"[{i}] is {_json_kind(item)} ({json.dumps(item)}), not a string"
        return ""
    if not isinstance(value, dict):
        return f"is {_json_kind(value)}, not an object"
    if kind == "dict[str]":
        for key, item in value.items():
            if not isinstance(item, str):
                return f"[{key!r}] is {_json_kind(item)}, not a string"
    return ""


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"
