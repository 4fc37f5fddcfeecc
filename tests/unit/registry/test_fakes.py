"""An in-process registry behind a transport, for the registry client's unit tests.

:class:`FakeRegistry` implements the part of the OCI distribution API envkit uses
(manifests, blobs with Range, uploads with PATCH chunks and mounts), with switches for
auth (none, basic, bearer), injected 5xx answers and connections dropped mid-blob.
:class:`FakeNet` routes requests to fake registries by host name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from envkit.oci.types import Descriptor
from envkit.registry.client import RegistryClient
from envkit.registry.credentials import Credentials
from envkit.registry.transport import Headers, Response, TLSOptions, TransportError
from envkit.store.store import Store
from tests import images

if TYPE_CHECKING:
    from envkit.registry.transport import Body


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _DroppingRaw:
    """A response body that breaks after ``limit`` bytes, as a dropped connection does."""

    def __init__(self, data: bytes, limit: int | None) -> None:
        self._data = data
        self._limit = limit

    def stream(self, amt: int = 65536) -> Iterator[bytes]:
        end = len(self._data) if self._limit is None else self._limit
        for i in range(0, end, amt):
            yield self._data[i : min(i + amt, end)]
        if self._limit is not None:
            raise ConnectionResetError("connection dropped by the fake")


@dataclass
class FakeRegistry:
    """One registry: content, auth mode and injected faults."""

    host: str = "registry.test"
    auth: str = "none"  # "none", "basic", "bearer"
    users: dict[str, str] = field(default_factory=dict)
    anonymous_pull: bool = True  # bearer: tokens without credentials may pull
    realm: str = "https://auth.test/token"
    ranges: bool = True
    blobs: dict[str, bytes] = field(default_factory=dict)
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)  # method -> 503s to send first
    drop_blob_after: list[int] = field(default_factory=list)  # cut-off per large GET
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> scope granted

    # -- content helpers ----------------------------------------------------------------
    def add_blob(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        self.blobs[digest] = data
        self.repo_blobs.setdefault(repo, set()).add(digest)
        return digest

    def add_manifest(self, repo: str, raw: bytes, media_type: str, tag: str | None) -> str:
        digest = sha(raw)
        self.manifests[(repo, digest)] = (raw, media_type)
        if tag:
            self.manifests[(repo, tag)] = (raw, media_type)
        return digest

    def requests_of(self, method: str) -> list[str]:
        return [path for m, path, _ in self.log if m == method]

    # -- auth --------------------------------------------------------------------------
    def _challenge(self, scope: str) -> Mapping[str, str]:
        if self.auth == "basic":
            return {"WWW-Authenticate": 'Basic realm="fake"'}
        extra = f',scope="{scope}"' if scope else ""
        return {"WWW-Authenticate": f'Bearer realm="{self.realm}",service="{self.host}"{extra}'}

    def _basic_ok(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == pw else None

    def token(self, query: dict[str, list[str]], header: str) -> tuple[int, bytes]:
        user = self._basic_ok(header)
        if header and user is None:
            return 401, b'{"details":"bad credentials"}'
        if user is None and not self.anonymous_pull:
            return 401, b'{"details":"anonymous access refused"}'
        scopes = query.get("scope", [])
        if user is None:
            scopes = [s for s in scopes if s.endswith(":pull")]
        value = uuid.uuid4().hex
        self.tokens[value] = " ".join(scopes)
        return 200, json.dumps({"token": value, "expires_in": 300}).encode()

    def _allowed(self, header: str, repo: str, push: bool) -> bool:
        if self.auth == "none":
            return True
        if self.auth == "basic":
            return self._basic_ok(header) is not None
        if not header.startswith("Bearer "):
            return False
        granted = self.tokens.get(header[7:], "")
        for s in granted.split():
            _, name, actions = s.split(":")
            if name == repo and ("push" in actions.split(",") or not push):
                return True
        return not repo and header[7:] in self.tokens

    # -- the API -------------------------------------------------------------------------
    def handle(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes | _DroppingRaw]:
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        self.log.append(
            (method, path + ("?" + parts.query if parts.query else ""), _Caseless(headers))
        )
        if self.fail.get(method, 0) > 0:
            self.fail[method] -= 1
            return 503, {}, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}'
        if path == "/v2/":
            if not self._allowed(headers.get("Authorization", ""), "", False):
                return 401, dict(self._challenge("")), b""
            return 200, {}, b"{}"
        m = re.match(r"^/v2/(.+)/(manifests|blobs/uploads|blobs)/?(.*)$", path)
        if not m:
            return 404, {}, b""
        repo, kind, rest = m.groups()
        push = method in ("PUT", "POST", "PATCH")
        scope = f"repository:{repo}:{'pull,push' if push else 'pull'}"
        if not self._allowed(headers.get("Authorization", ""), repo, push):
            return 401, dict(self._challenge(scope)), b""
        if kind == "manifests":
            return self._manifests(method, repo, rest, headers, body)
        if kind == "blobs":
            return self._blob(method, repo, rest, headers)
        return self._upload(method, repo, rest, query, headers, body)

    def _manifests(
        self, method: str, repo: str, ref: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "PUT":
            media_type = headers.get("Content-Type", "")
            doc = json.loads(body)
            kids = [doc["config"], *doc["layers"]] if "config" in doc else doc["manifests"]
            for kid in kids:
                if (repo, kid["digest"]) not in self.manifests and kid[
                    "digest"
                ] not in self.repo_blobs.get(repo, set()):
                    return 400, {}, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}'
            digest = self.add_manifest(
                repo, body, media_type, None if ref.startswith("sha256:") else ref
            )
            return 201, {"Docker-Content-Digest": digest}, b""
        found = self.manifests.get((repo, ref))
        if found is None:
            return 404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}'
        raw, media_type = found
        headers = {"Content-Type": media_type, "Docker-Content-Digest": sha(raw)}
        return 200, headers, b"" if method == "HEAD" else raw

    def _blob(
        self, method: str, repo: str, digest: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes | _DroppingRaw]:
        if digest not in self.repo_blobs.get(repo, set()):
            return 404, {}, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}'
        data = self.blobs[digest]
        if method == "HEAD":
            return 200, {"Content-Length": str(len(data))}, b""
        start = 0
        status = 200
        wanted = headers.get("Range", "")
        if wanted and self.ranges:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            status = 206
        part = data[start:]
        limit = None
        if self.drop_blob_after and len(part) > self.drop_blob_after[0]:
            limit = self.drop_blob_after.pop(0)
        return status, {"Content-Length": str(len(part))}, _DroppingRaw(part, limit)

    def _upload(
        self,
        method: str,
        repo: str,
        session: str,
        query: dict[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "POST":
            if "mount" in query:
                digest, source = query["mount"][0], query["from"][0]
                if digest in self.repo_blobs.get(source, set()):
                    self.repo_blobs.setdefault(repo, set()).add(digest)
                    return 201, {"Location": f"/v2/{repo}/blobs/{digest}"}, b""
            sid = uuid.uuid4().hex
            self.uploads[sid] = bytearray()
            return 202, {"Location": f"/v2/{repo}/blobs/uploads/{sid}?_state=x"}, b""
        if session not in self.uploads:
            return 404, {}, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"x"}]}'
        buf = self.uploads[session]
        if method == "PATCH":
            start = int(headers["Content-Range"].split("-")[0])
            if start != len(buf):
                return 416, {}, b""
            buf += body
            return 202, {"Location": f"/v2/{repo}/blobs/uploads/{session}?_state=y"}, b""
        if method == "PUT":
            buf += body
            digest = query["digest"][0]
            if sha(bytes(buf)) != digest:
                return 400, {}, b'{"errors":[{"code":"DIGEST_INVALID","message":"x"}]}'
            self.add_blob(repo, bytes(buf))
            del self.uploads[session]
            return 201, {"Docker-Content-Digest": digest}, b""
        return 405, {}, b""


_ANY_TLS = TLSOptions()


class FakeNet:
    """A transport serving fake registries (and their token realm) by host."""

    def __init__(self, *registries: FakeRegistry) -> None:
        self.registries = {r.host: r for r in registries}
        self.open_responses = 0  # answers not yet read to the end or closed

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        *,
        tls: TLSOptions = _ANY_TLS,
    ) -> Response:
        parts = urlsplit(url)
        opened = body() if callable(body) else body
        if opened is None:
            data = b""
        elif isinstance(opened, bytes):
            data = opened
        else:
            data = b"".join(iter(lambda: opened.read(65536), b""))
            opened.close()
        sent = _Caseless(headers)
        if parts.netloc == "auth.test":
            realm = next(iter(self.registries.values()))
            status, out = realm.token(parse_qs(parts.query), sent.get("Authorization", ""))
            return self._response(status, {}, out, url)
        registry = self.registries.get(parts.netloc)
        if registry is None:
            raise TransportError(f"fake net: no host {parts.netloc}") from ConnectionRefusedError()
        status, resp_headers, payload = registry.handle(method, url, sent, data)
        return self._response(status, resp_headers, payload, url)

    def _response(
        self, status: int, headers: Mapping[str, str], payload: bytes | _DroppingRaw, url: str
    ) -> Response:
        raw = payload if isinstance(payload, _DroppingRaw) else _DroppingRaw(payload, None)
        self.open_responses += 1

        def release(end: str) -> None:
            self.open_responses -= 1

        return Response(status, Headers(dict(headers)), raw.stream, release, url)

    def close(self) -> None:
        pass


class _Caseless(dict[str, str]):
    """Request headers as a server sees them: names compared without case."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in headers.items()})

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())


def client_factory(net: FakeNet, creds: Credentials | None = None) -> Any:
    """A ``client_factory`` for pull/push: clients on the fake net, no backoff sleeps."""

    def make(name: str, **kwargs: Any) -> RegistryClient:
        kwargs.setdefault("credentials", creds)
        return RegistryClient(name, transport=net, backoff=0.0, **kwargs)

    return make


def serve_image(
    reg: FakeRegistry, repo: str, tag: str | None, layers: list[bytes], **kwargs: Any
) -> tuple[bytes, dict[str, bytes]]:
    """Put an image (tests/images.py) in ``reg``; returns its manifest and blobs."""
    blobs, raw = images.image_blobs(layers, **kwargs)
    for digest, data in blobs.items():
        if digest != sha(raw):
            reg.add_blob(repo, data)
    reg.add_manifest(repo, raw, images.MT_MANIFEST, tag)
    return raw, blobs


def store_image(store: Store, ref: str, layers: list[bytes], **kwargs: Any) -> Descriptor:
    """Put an image (tests/images.py) in ``store`` under ``ref``."""
    blobs, raw = images.image_blobs(layers, **kwargs)
    for digest, data in blobs.items():
        if digest != sha(raw):
            store.write_blob(data, digest)
    desc = store.put_manifest(raw, images.MT_MANIFEST)
    store.tag(ref, desc)
    return desc


# -- tests of the fake itself (so a broken fake cannot make the real tests pass) -------


def test_fake_refuses_a_manifest_whose_blobs_are_missing() -> None:
    reg = FakeRegistry()
    raw = json.dumps({"config": {"digest": sha(b"c")}, "layers": []}).encode()
    status, _, _ = reg.handle("PUT", "https://registry.test/v2/a/manifests/1", {}, raw)
    assert status == 400


def test_fake_bearer_token_without_credentials_cannot_push() -> None:
    reg = FakeRegistry(auth="bearer")
    status, body = reg.token({"scope": ["repository:a:pull,push"]}, "")
    assert status == 200
    token = json.loads(body)["token"]
    headers = {"Authorization": "Bearer " + token}
    status, _, _ = reg.handle("POST", "https://registry.test/v2/a/blobs/uploads/", headers, b"")
    assert status == 401
