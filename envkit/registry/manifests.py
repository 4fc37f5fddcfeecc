"""Manifests over the distribution API: fetch (verified), put, and platform selection."""

from __future__ import annotations

import json

from envkit.errors import RegistryError
from envkit.oci.digest import is_digest, sha256_bytes
from envkit.oci.types import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    Descriptor,
    Platform,
)
from envkit.records import Value
from envkit.registry.client import RegistryClient, scope
from envkit.registry.transport import BodyError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

ACCEPT = ", ".join((MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST))
#: The distribution spec lets registries refuse manifests above 4 MiB; so do we.
MAX_MANIFEST = 4 << 20
_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1"


class RemoteManifest(Value):
    """A manifest or index as the registry served it: exact bytes, type and digest, and
    the parsed document."""

    raw: bytes
    media_type: str
    digest: str
    data: dict[str, Any]

    @property
    def descriptor(self) -> Descriptor:
        """What points at this document."""
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def is_index(self) -> bool:
        """Whether it is an index (rather than an image manifest)."""
        return self.media_type in INDEX_TYPES


def _media_type(header: str, data: dict[str, Any]) -> str:
    declared = data.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = header.split(";", 1)[0].strip()
    if header in INDEX_TYPES or header in MANIFEST_TYPES:
        return header
    return MT_OCI_INDEX if "manifests" in data else MT_OCI_MANIFEST


def fetch(client: RegistryClient, repo: str, reference: str) -> RemoteManifest:
    """GET the manifest ``reference`` (a tag or a digest) of ``repo``, checked against
    the digest asked for and the one the registry announces."""
    what = f"manifest {reference}"
    resp = client.request(
        "GET",
        f"/v2/{repo}/manifests/{reference}",
        repo=repo,
        scope=scope(repo),
        headers={"Accept": ACCEPT},
        stream=True,
        what=what,
    )
    parts: list[bytes] = []
    total = 0
    with resp:
        try:
            for chunk in resp.iter_content(1 << 16):
                total += len(chunk)
                if total > MAX_MANIFEST:
                    raise RegistryError(f"{client.name}/{repo}: {what} is larger than 4 MiB")
                parts.append(chunk)
        except BodyError:
            raise RegistryError(
                f"{client.name}/{repo}: the connection broke while reading {what}",
                hint="try again; check the network and the registry",
            ) from None
    raw = b"".join(parts)
    digest = sha256_bytes(raw)
    announced = resp.headers.get("Docker-Content-Digest", "")
    expected = reference if reference.startswith("sha256:") else announced
    if expected.startswith("sha256:") and digest != expected:
        raise RegistryError(
            f"{client.name}/{repo}: {what} hashes to {digest}, expected {expected}",
            hint="the registry or a proxy serves corrupt content",
        )
    return parse(raw, resp.headers.get("Content-Type", ""), f"{client.name}/{repo}: {what}")


def parse(raw: bytes, content_type: str, what: str) -> RemoteManifest:
    """A manifest or index from its bytes and the ``Content-Type`` it was served with
    (``what`` names it in errors)."""
    if content_type.startswith(_SCHEMA1):
        raise RegistryError(
            f"{what} is a docker schema 1 manifest",
            hint="schema 1 is deprecated; push the image again with a current client",
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise RegistryError(f"{what} is not a JSON document")
    media_type = _media_type(content_type, data)
    if media_type not in INDEX_TYPES and media_type not in MANIFEST_TYPES:
        raise RegistryError(
            f"{what} has unsupported media type {media_type!r}",
            hint="envkit pulls OCI and docker schema 2 manifests and indexes",
        )
    return RemoteManifest(raw, media_type, sha256_bytes(raw), data)


def head(
    client: RegistryClient, repo: str, reference: str, *, actions: str = "pull"
) -> tuple[str, str] | None:
    """The digest and media type the registry serves for ``reference`` (HEAD, no body);
    None when it has no such manifest or does not announce a digest. ``actions``: the
    token scope to ask for (a push asks for ``pull,push`` once for all its requests)."""
    resp = client.request(
        "HEAD",
        f"/v2/{repo}/manifests/{reference}",
        repo=repo,
        scope=scope(repo, actions),
        headers={"Accept": ACCEPT},
        ok=(200, 404),
        what=f"manifest {reference}",
    )
    digest = resp.headers.get("Docker-Content-Digest", "")
    if resp.status_code == 404:
        return None
    if not is_digest(digest):
        return None
    return digest, resp.headers.get("Content-Type", "")


def put(client: RegistryClient, repo: str, reference: str, raw: bytes, media_type: str) -> None:
    """PUT a manifest byte for byte; checks the digest the registry computed."""
    resp = client.request(
        "PUT",
        f"/v2/{repo}/manifests/{reference}",
        repo=repo,
        scope=scope(repo, "pull,push"),
        headers={"Content-Type": media_type},
        body=raw,
        ok=(201,),
        what=f"manifest {reference}",
    )
    announced = resp.headers.get("Docker-Content-Digest", "")
    if announced and announced != sha256_bytes(raw):
        raise RegistryError(
            f"{client.name}/{repo}: the registry stored manifest {reference} as "
            f"{announced}, not {sha256_bytes(raw)}"
        )


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` (or ``arch`` alone, for linux) as a :class:`Platform`."""
    parts = text.strip().split("/")
    if len(parts) == 1 and parts[0]:
        return Platform("linux", parts[0])
    if len(parts) in (2, 3) and all(parts):
        return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")
    raise RegistryError(
        f"invalid platform {text!r}", hint="write os/arch[/variant], like linux/arm64"
    )


def _label(p: Platform | None) -> str:
    if p is None:
        return "?"
    return "/".join(x for x in (p.os, p.architecture, p.variant) if x)


def select(index: RemoteManifest, want: Platform, where: str) -> Descriptor:
    """The child of ``index`` for platform ``want``."""
    try:
        children = [Descriptor.from_json(d) for d in index.data.get("manifests", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"{where}: index {index.digest} is malformed: {exc}") from None
    images = [c for c in children if c.media_type in MANIFEST_TYPES and c.platform is not None]
    for child in images:
        p = child.platform
        assert p is not None
        same_variant = not want.variant or not p.variant or p.variant == want.variant
        if p.os == want.os and p.architecture == want.architecture and same_variant:
            return child
    offered = sorted(
        {_label(c.platform) for c in images if _label(c.platform) != "unknown/unknown"}
    )
    raise RegistryError(
        f"{where}: no image for {_label(want)} in index {index.digest} "
        f"(it has: {', '.join(offered) or 'none'})",
        hint="choose one with --platform os/arch",
    )
