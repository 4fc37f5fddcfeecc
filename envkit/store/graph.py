"""What an image reaches in the store: its manifest (or index), config and layers."""

from __future__ import annotations

import json
import os

from envkit.errors import DigestMismatchError, StoreError
from envkit.oci.types import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Manifest, Platform
from envkit.records import Record, field

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

    from envkit.store.store import Store

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}


def host_platform() -> Platform:
    """The platform images are chosen for when a ref points at a multi-platform index."""
    machine = os.uname().machine  # what platform.machine() returns, without its import
    return Platform(
        os="linux",
        architecture=_ARCH.get(machine, machine),
        variant="v7" if machine == "armv7l" else "",
    )


def parse_document(raw: bytes, digest: str) -> dict[str, Any]:
    """The JSON object of a manifest or index blob; :class:`StoreError` when it is not one."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise StoreError(f"blob {digest} is not a JSON manifest or index")
    return data


def is_index(data: dict[str, Any], media_type: str = "") -> bool:
    """Whether a parsed document is an image index (rather than an image manifest)."""
    declared = str(data.get("mediaType") or media_type)
    return declared in INDEX_TYPES or ("manifests" in data and "config" not in data)


def check_kind(data: dict[str, Any], media_type: str, digest: str) -> None:
    """Raise :class:`StoreError` unless ``data`` is a manifest or index of ``media_type``."""
    declared = data.get("mediaType")
    if declared is not None and declared != media_type:
        raise StoreError(
            f"blob {digest} declares media type {declared!r}, not {media_type!r}",
            hint="pass the media type the document itself declares",
        )
    if media_type in INDEX_TYPES:
        if not isinstance(data.get("manifests"), list):
            raise StoreError(f"index {digest} has no 'manifests' list")
    elif media_type in MANIFEST_TYPES:
        if not isinstance(data.get("config"), dict):
            raise StoreError(f"manifest {digest} has no 'config' descriptor")
    else:
        raise StoreError(
            f"unsupported manifest media type {media_type!r} for {digest}",
            hint="the store keeps OCI or docker schema 2 manifests and indexes",
        )


def children(data: dict[str, Any]) -> list[Descriptor]:
    """The descriptors a manifest or index document points to, in document order."""
    if is_index(data):
        return [Descriptor.from_json(d) for d in data.get("manifests", [])]
    manifest = Manifest.from_json(data)
    return [manifest.config, *manifest.layers]


def select_platform(candidates: list[Descriptor], store: Store, digest: str) -> Descriptor:
    """The present child manifest of index ``digest`` for the host platform.

    Falls back to the only present child when no child names the host platform.
    """
    present = [
        d for d in candidates if d.media_type not in INDEX_TYPES and store.has_blob(d.digest)
    ]
    host = host_platform()
    for d in present:
        if d.platform and _matches(d.platform, host):
            return d
    if len(present) == 1:
        return present[0]
    wanted = f"{host.os}/{host.architecture}"
    raise StoreError(
        f"index {digest} has no image for {wanted} in the store "
        f"({len(present)} of {len(candidates)} platforms present)",
        hint=f"load or pull the {wanted} image of this index",
    )


def _matches(p: Platform, host: Platform) -> bool:
    same_variant = not host.variant or not p.variant or p.variant == host.variant
    return p.os == host.os and p.architecture == host.architecture and same_variant


class Closure(Record):
    """The blobs one image reaches: present ones in walk order, missing ones, and
    unreadable ones (digest -> why)."""

    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every blob the image reaches is present and readable."""
        return not (self.missing or self.unreadable)


def closure(store: Store, desc: Descriptor) -> Closure:
    """Walk ``desc`` (a manifest or an index) and collect every blob it reaches.

    Manifests and indexes are read verified; configs and layers are only checked for
    presence (``fsck`` hashes every blob separately). An index may hold only some of its
    platforms, as after a single-platform pull: absent children are not missing, but an
    index none of whose children is present is.
    """
    out = Closure()
    seen: set[str] = set()
    _walk(store, desc, out, seen)
    return out


def _walk(store: Store, desc: Descriptor, out: Closure, seen: set[str]) -> None:
    if desc.digest in seen:
        return
    seen.add(desc.digest)
    try:
        raw = store.read_blob(desc.digest)
    except DigestMismatchError:
        out.unreadable[desc.digest] = "corrupt"
        return
    except StoreError:
        out.missing.append(desc.digest)
        return
    out.present.append(desc.digest)
    try:
        data = parse_document(raw, desc.digest)
        kids = children(data)
    except (StoreError, KeyError, TypeError, ValueError):
        out.unreadable[desc.digest] = "not a valid manifest or index"
        return
    if is_index(data):
        present = [k for k in kids if store.has_blob(k.digest)]
        if not present:
            out.missing.extend(k.digest for k in kids if k.digest not in seen)
            seen.update(k.digest for k in kids)
        for kid in present:
            _walk(store, kid, out, seen)
        return
    for kid in kids:
        if kid.digest in seen:
            continue
        seen.add(kid.digest)
        if store.has_blob(kid.digest):
            out.present.append(kid.digest)
        else:
            out.missing.append(kid.digest)
