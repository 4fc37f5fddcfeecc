"""Blob downloads over real HTTP (requests on 127.0.0.1): a connection cut in the middle
of a blob resumes with ``Range`` from where it stopped, on the same pull, and blobs move
in parallel over kept-alive connections."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from envkit.oci.types import Descriptor
from envkit.registry import blobs
from envkit.registry.client import RegistryClient
from envkit.registry.endpoints import Endpoint
from envkit.registry.parallel import map_parallel
from envkit.registry.progress import Progress
from envkit.store.store import Store
from tests.unit.http_servers import Answer, Handler, Server

BLOB = os.urandom(3 << 20)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class _Blobs:
    """A registry's blob endpoint that cuts the first ``cuts`` answers after ``at`` bytes."""

    def __init__(self, content: dict[str, bytes], cuts: int = 0, at: int = 1 << 20) -> None:
        self.content = content
        self.cuts = cuts
        self.at = at

    def __call__(self, handler: Handler) -> Answer:
        if handler.path == "/v2/":
            return 200, {}, b"{}"
        m = re.match(r"^/v2/[^/]+/blobs/(sha256:[0-9a-f]+)$", handler.path)
        if not m or m.group(1) not in self.content:
            return 404, {}, b""
        data = self.content[m.group(1)]
        start = 0
        status = 200
        wanted = handler.headers.get("Range", "")
        if wanted:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            status = 206
        headers = {"Content-Length": str(len(data) - start)}
        if self.cuts:
            self.cuts -= 1
            headers["X-Cut-After"] = str(self.at)
        return status, headers, data[start:]


def _client(srv: Server) -> RegistryClient:
    host = f"127.0.0.1:{srv.port}"
    client = RegistryClient(Endpoint(host, host, True, True), credentials=None, backoff=0.0)
    client._base = srv.url()
    return client


def test_a_connection_cut_mid_blob_resumes_with_range(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc = Descriptor("application/octet-stream", DIGEST, len(BLOB))
    with Server(_Blobs({DIGEST: BLOB}, cuts=1, at=1 << 20)) as srv:
        client = _client(srv)
        with store.shared():
            assert blobs.download(client, "repo", desc, store, Progress.silent())
        client.close()
    assert store.blob_path(DIGEST).read_bytes() == BLOB
    ranges = [h.get("Range", "") for m, _, p, h, _ in srv.seen if "/blobs/" in p]
    assert ranges == ["", f"bytes={1 << 20}-"]
    assert not blobs.partial_path(store, DIGEST).exists()


def test_a_pull_killed_mid_blob_resumes_from_its_partial_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc = Descriptor("application/octet-stream", DIGEST, len(BLOB))
    kept = 1_500_000
    with store.shared():  # the store's folders exist
        blobs.partial_path(store, DIGEST).write_bytes(BLOB[:kept])
    with Server(_Blobs({DIGEST: BLOB})) as srv:
        client = _client(srv)
        with store.shared():
            blobs.download(client, "repo", desc, store, Progress.silent())
        client.close()
    assert store.blob_path(DIGEST).read_bytes() == BLOB
    assert [h.get("Range") for _, _, _, h, _ in srv.seen] == [f"bytes={kept}-"]


def test_blobs_move_in_parallel_over_kept_connections(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    content = {}
    for i in range(6):
        data = os.urandom(200_000 + i)
        content["sha256:" + hashlib.sha256(data).hexdigest()] = data
    descs = [Descriptor("application/octet-stream", d, len(b)) for d, b in content.items()]
    with Server(_Blobs(content)) as srv:
        client = _client(srv)
        with store.shared():
            map_parallel(
                lambda d: blobs.download(client, "repo", d, store, Progress.silent()), descs, 3
            )
        client.close()
    for digest, data in content.items():
        assert store.blob_path(digest).read_bytes() == data
    assert len(srv.peers) <= 3  # three workers, each keeps its connection
