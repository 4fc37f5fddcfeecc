"""Blob transfers: resumable, verified downloads and deduplicated, chunked uploads.

A download is written to ``tmp/pull-<hex>.partial`` in the store, locked while written
(so ``fsck`` and ``prune`` see a live file and a concurrent pull of the same blob waits).
When a pull is interrupted the partial file stays; the next pull re-hashes what it holds
and asks the registry for the rest with a ``Range`` request. Nothing reaches ``blobs/``
unless the whole content hashes to its digest and has its announced size.

An upload first asks (``HEAD``) whether the registry has the blob, then tries a
cross-repository mount from repositories of the same registry known to hold it, then
uploads: one ``PUT`` for small blobs, ``PATCH`` chunks then ``PUT ?digest=`` for large ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from urllib.parse import urlencode

from envkit.errors import DigestMismatchError, RegistryError, StoreError
from envkit.oci.digest import CHUNK, hex_of, new_sha256
from envkit.oci.types import Descriptor
from envkit.registry.client import RegistryClient, scope
from envkit.registry.progress import Progress
from envkit.registry.transport import BodyError
from envkit.store.atomic import fsync_dir
from envkit.store.fsck import RESUMABLE_PREFIX, RESUMABLE_SUFFIX
from envkit.store.store import Store

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from hashlib import _Hash
    from pathlib import Path
    from typing import BinaryIO

#: Blobs larger than this are uploaded in chunks of this size.
DEFAULT_CHUNK_SIZE = 16 << 20
OCTET_STREAM = "application/octet-stream"


def partial_path(store: Store, digest: str) -> Path:
    """Where an interrupted download of ``digest`` is kept."""
    return store.tmp_dir / f"{RESUMABLE_PREFIX}{hex_of(digest)}{RESUMABLE_SUFFIX}"


@contextlib.contextmanager
def _locked_partial(path: Path) -> Iterator[BinaryIO]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        # Blocking: a concurrent pull of the same blob finishes it first.
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "r+b", buffering=0, closefd=False) as fh:
            yield fh
    finally:
        os.close(fd)


def present(store: Store, desc: Descriptor) -> bool:
    """Whether the store holds blob ``desc`` (with its size)."""
    try:
        return store.blob_size(desc.digest) == desc.size
    except StoreError:
        return False


def download(
    client: RegistryClient,
    repo: str,
    desc: Descriptor,
    store: Store,
    progress: Progress,
    *,
    sync_dir: bool = True,
) -> bool:
    """Make blob ``desc`` of ``repo`` present in ``store``; returns whether it was fetched.

    The caller holds ``store.shared()``. ``sync_dir=False`` leaves the sync of
    ``store.blob_dir`` after the rename to the caller (one sync for many downloads),
    which must do it before anything refers to the blob.
    """
    if present(store, desc):
        progress.start(desc.digest, desc.size, "Already exists")
        return False
    path = partial_path(store, desc.digest)
    with _locked_partial(path) as fh:
        if present(store, desc):  # another process finished it while we waited
            path.unlink(missing_ok=True)
            progress.start(desc.digest, desc.size, "Already exists")
            return False
        progress.start(desc.digest, desc.size, "Downloading")
        digest, size = _fill(client, repo, desc, fh, progress)
        if digest != desc.digest or size != desc.size:
            fh.truncate(0)
            path.unlink(missing_ok=True)
            raise RegistryError(
                f"{client.name}/{repo}: blob {desc.digest} arrived as {digest} "
                f"({size} bytes, expected {desc.size})",
                hint="the registry or a proxy serves corrupt content; pull again",
            ) from DigestMismatchError(f"{digest} != {desc.digest}")
        os.fsync(fh.fileno())
        os.replace(path, store.blob_path(desc.digest))
        if sync_dir:
            fsync_dir(store.blob_dir)
    progress.finish(desc.digest, "Pull complete")
    return True


def _rehash(fh: BinaryIO, limit: int) -> tuple[_Hash, int]:
    """Hash what an earlier attempt left in ``fh`` (at most ``limit`` bytes are kept)."""
    h = new_sha256()
    fh.seek(0)
    have = 0
    while have < limit and (chunk := fh.read(min(CHUNK, limit - have))):
        h.update(chunk)
        have += len(chunk)
    fh.truncate(have)
    fh.seek(have)
    return h, have


def _fill(
    client: RegistryClient, repo: str, desc: Descriptor, fh: BinaryIO, progress: Progress
) -> tuple[str, int]:
    """Download into ``fh``, resuming from what it holds; returns (digest, size) of it all."""
    h, have = _rehash(fh, desc.size)
    for attempt in range(client.retries):
        if have >= desc.size:
            break
        headers = {"Range": f"bytes={have}-"} if have else {}
        resp = client.request(
            "GET",
            f"/v2/{repo}/blobs/{desc.digest}",
            repo=repo,
            scope=scope(repo),
            headers=headers,
            stream=True,
            ok=(200, 206),
            what=f"blob {desc.digest}",
        )
        if have and resp.status_code == 200:
            # The registry ignored the Range header: start over.
            h, have = new_sha256(), 0
            fh.seek(0)
            fh.truncate(0)
        try:
            for chunk in resp.iter_content(CHUNK):
                if have + len(chunk) > desc.size:
                    have += len(chunk)
                    break
                fh.write(chunk)
                h.update(chunk)
                have += len(chunk)
                progress.advance(desc.digest, have)
        except BodyError:
            if attempt == client.retries - 1:
                raise RegistryError(
                    f"{client.name}/{repo}: download of {desc.digest} kept failing "
                    f"({have} of {desc.size} bytes)",
                    hint="pull again: the download resumes where it stopped",
                ) from None
            time.sleep(client.backoff * (2**attempt))
            continue
        finally:
            resp.close()
        break
    return "sha256:" + h.hexdigest(), have


class _SizedReader:
    """A file-like body with a known length (sent as Content-Length), reading a store
    blob verified and reporting progress."""

    def __init__(self, stream: BinaryIO, size: int, on_read: Progress, digest: str) -> None:
        self._stream = stream
        self._size = size
        self._done = 0
        self._progress = on_read
        self._digest = digest

    def __len__(self) -> int:
        return self._size - self._done

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n if n and n > 0 else CHUNK)
        self._done += len(data)
        self._progress.advance(self._digest, self._done)
        return data

    def close(self) -> None:
        self._stream.close()


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + urlencode({"digest": digest})


def upload(
    client: RegistryClient,
    repo: str,
    desc: Descriptor,
    store: Store,
    progress: Progress,
    *,
    mount_from: Sequence[str] = (),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> str:
    """Make blob ``desc`` present in ``repo``; returns ``"exists"``, ``"mounted"`` or
    ``"uploaded"``."""
    push_scope = scope(repo, "pull,push")
    blob_url = f"/v2/{repo}/blobs/{desc.digest}"
    head = client.request(
        "HEAD", blob_url, repo=repo, scope=push_scope, ok=(200, 404), what="blob check"
    )
    if head.status_code == 200:
        progress.start(desc.digest, desc.size, "Layer already exists")
        return "exists"
    location = ""
    for source in mount_from:
        query = urlencode({"mount": desc.digest, "from": source})
        resp = client.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?{query}",
            repo=repo,
            scope=f"{push_scope} {scope(source)}",
            ok=(201, 202),
            what=f"mount from {source}",
        )
        if resp.status_code == 201:
            progress.start(desc.digest, desc.size, f"Mounted from {source}")
            return "mounted"
        location = resp.headers.get("Location", "")
        break
    if not location:
        resp = client.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            repo=repo,
            scope=push_scope,
            ok=(202,),
            what="upload start",
        )
        location = resp.headers.get("Location", "")
    if not location:
        raise RegistryError(f"{client.name}/{repo}: upload started without a Location header")
    progress.start(desc.digest, desc.size, "Uploading")
    if desc.size <= chunk_size:
        _put_whole(client, repo, desc, store, progress, location)
    else:
        _put_chunked(client, repo, desc, store, progress, location, chunk_size)
    progress.finish(desc.digest, "Pushed")
    return "uploaded"


def _put_whole(
    client: RegistryClient,
    repo: str,
    desc: Descriptor,
    store: Store,
    progress: Progress,
    location: str,
) -> None:
    def body() -> _SizedReader:
        stream = store.open_blob(desc.digest, verify=True)
        return _SizedReader(stream, desc.size, progress, desc.digest)

    client.request(
        "PUT",
        _with_digest(location, desc.digest),
        repo=repo,
        scope=scope(repo, "pull,push"),
        headers={"Content-Type": OCTET_STREAM},
        body=body,
        ok=(201,),
        what=f"upload of {desc.digest}",
    )


def _put_chunked(
    client: RegistryClient,
    repo: str,
    desc: Descriptor,
    store: Store,
    progress: Progress,
    location: str,
    chunk_size: int,
) -> None:
    push_scope = scope(repo, "pull,push")
    sent = 0
    with store.open_blob(desc.digest, verify=True) as stream:
        while True:
            chunk = stream.read(chunk_size)
            if not chunk:
                break
            end = sent + len(chunk) - 1
            resp = client.request(
                "PATCH",
                location,
                repo=repo,
                scope=push_scope,
                headers={
                    "Content-Type": OCTET_STREAM,
                    "Content-Range": f"{sent}-{end}",
                    "Content-Length": str(len(chunk)),
                },
                body=chunk,
                ok=(202,),
                what=f"upload of {desc.digest} (bytes {sent}-{end})",
            )
            location = resp.headers.get("Location", location)
            sent = end + 1
            progress.advance(desc.digest, sent)
    if sent != desc.size:
        raise RegistryError(
            f"{client.name}/{repo}: blob {desc.digest} has {sent} bytes in the store, "
            f"its descriptor says {desc.size}",
            hint="run `envkit fsck`",
        )
    client.request(
        "PUT",
        _with_digest(location, desc.digest),
        repo=repo,
        scope=push_scope,
        headers={"Content-Length": "0"},
        ok=(201,),
        what=f"upload of {desc.digest} (commit)",
    )
