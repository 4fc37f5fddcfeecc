"""Test image factory: small real images built without envkit's own writers.

``busybox_layer()`` is a root filesystem with the host's static busybox and its applet
links; ``build_layout()`` turns layers into an OCI image layout directory (as ``skopeo``'s
``oci:`` transport reads it) and ``build_archive()`` into an OCI archive (a tar of that
layout). Everything is deterministic: sorted entries, fixed mtimes and owners, gzip
headers without name or time, so the same call gives the same digests on any machine.
Later runtime tests reuse these images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUSYBOX = Path(os.environ.get("ENVKIT_TEST_BUSYBOX", "/bin/busybox"))
APPLETS = (
    "sh",
    "ls",
    "cat",
    "echo",
    "env",
    "id",
    "sleep",
    "true",
    "false",
    "mkdir",
    "rm",
    "touch",
    "wget",
    "nc",
    "hostname",
    "ps",
    "grep",
    "sed",
    "test",
    "uname",
)
MTIME = 1_700_000_000

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def have_busybox() -> bool:
    """Whether the static busybox the rootfs needs is installed."""
    return BUSYBOX.is_file()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def layer_tar(
    files: Mapping[str, bytes],
    *,
    dirs: Iterable[str] = (),
    symlinks: Mapping[str, str] | None = None,
    executable: Iterable[str] = (),
    owners: Mapping[str, tuple[int, int, int]] | None = None,
) -> bytes:
    """An uncompressed layer tar: parent dirs implied, entries sorted by path;
    ``owners`` gives entries another ``(uid, gid, mode)`` than root's 0755/0644."""
    entries: dict[str, tarfile.TarInfo] = {}
    payload: dict[str, bytes] = {}
    execs = set(executable)

    def add_parents(path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            entries.setdefault(d, _info(d, tarfile.DIRTYPE, 0o755))

    for d in dirs:
        add_parents(d + "/x")
    for path, data in files.items():
        add_parents(path)
        entries[path] = _info(path, mode=0o755 if path in execs else 0o644)
        entries[path].size = len(data)
        payload[path] = data
    for path, target in (symlinks or {}).items():
        add_parents(path)
        info = _info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        entries[path] = info
    if "tmp" in entries:
        entries["tmp"].mode = 0o1777
    for path, (uid, gid, mode) in (owners or {}).items():
        entries[path].uid, entries[path].gid, entries[path].mode = uid, gid, mode
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(entries):
            info = entries[path]
            content = payload.get(path)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


def busybox_layer() -> bytes:
    """A minimal root filesystem: static busybox, applet symlinks, /etc/passwd, /tmp."""
    files = {
        "bin/busybox": BUSYBOX.read_bytes(),
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }
    links = {f"bin/{a}": "busybox" for a in APPLETS}
    return layer_tar(
        files,
        dirs=("dev", "proc", "sys", "tmp", "root", "etc"),
        symlinks=links,
        executable=("bin/busybox",),
    )


def random_layer(seed: int, total: int, files: int = 4) -> bytes:
    """A layer of ``files`` pseudo-random files, ``total`` bytes in all (deterministic)."""
    each = max(1, total // files)
    content = {}
    for i in range(files):
        block = hashlib.sha256(f"{seed}-{i}".encode()).digest()
        data = bytearray()
        counter = 0
        while len(data) < each:
            data += hashlib.sha256(block + counter.to_bytes(8, "big")).digest()
            counter += 1
        content[f"data/{seed}/file{i}.bin"] = bytes(data[:each])
    return layer_tar(content)


def compress(data: bytes, kind: str) -> bytes:
    """``data`` compressed reproducibly (``""`` leaves it as is)."""
    if kind == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if kind == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor(level=3).compress(data))
    if kind == "":
        return data
    raise ValueError(kind)


@dataclass(frozen=True)
class BuiltImage:
    """Digests of an image the factory wrote, for tests to compare against."""

    manifest_digest: str
    manifest_size: int
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    ref: str


def image_blobs(
    layers: Sequence[bytes],
    *,
    compression: str = "gzip",
    cmd: Sequence[str] = ("/bin/sh",),
    architecture: str = "amd64",
    labels: Mapping[str, str] | None = None,
) -> tuple[dict[str, bytes], bytes]:
    """Every blob of an image (by digest) and its manifest bytes."""
    blobs: dict[str, bytes] = {}
    descs = []
    diff_ids = []
    for layer in layers:
        packed = compress(layer, compression)
        digest = sha256(packed)
        blobs[digest] = packed
        descs.append({"mediaType": MT_LAYER[compression], "digest": digest, "size": len(packed)})
        diff_ids.append(sha256(layer))
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"], "Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2023-11-14T22:13:20Z", "created_by": "tests/images.py"} for _ in layers
        ],
    }
    config_raw = _json(config)
    blobs[sha256(config_raw)] = config_raw
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha256(config_raw), "size": len(config_raw)},
        "layers": descs,
    }
    raw = _json(manifest)
    blobs[sha256(raw)] = raw
    return blobs, raw


def describe(blobs: Mapping[str, bytes], manifest_raw: bytes, ref: str) -> BuiltImage:
    manifest = json.loads(manifest_raw)
    config = json.loads(blobs[manifest["config"]["digest"]])
    return BuiltImage(
        manifest_digest=sha256(manifest_raw),
        manifest_size=len(manifest_raw),
        config_digest=manifest["config"]["digest"],
        layer_digests=tuple(d["digest"] for d in manifest["layers"]),
        diff_ids=tuple(config["rootfs"]["diff_ids"]),
        ref=ref,
    )


def build_layout(
    dest: Path,
    layers: Sequence[bytes] | None = None,
    *,
    ref: str = "busybox:1",
    compression: str = "gzip",
    annotations: Mapping[str, str] | None = None,
) -> BuiltImage:
    """Write an OCI image layout directory holding one image named ``ref``.

    ``layers`` are uncompressed layer tars (default: :func:`busybox_layer`). The index
    entry carries ``org.opencontainers.image.ref.name: ref`` (as skopeo's ``oci:DIR:ref``
    reads it) plus ``annotations``.
    """
    blobs, raw = image_blobs(
        layers if layers is not None else [busybox_layer()], compression=compression
    )
    write_layout(
        dest,
        blobs,
        [(raw, MT_MANIFEST, {"org.opencontainers.image.ref.name": ref, **(annotations or {})})],
    )
    return describe(blobs, raw, ref)


def write_layout(
    dest: Path,
    blobs: Mapping[str, bytes],
    entries: Sequence[tuple[bytes, str, Mapping[str, str]]],
) -> None:
    """Write ``blobs`` and an index.json listing ``entries`` (raw, media type, annotations)."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "blobs" / "sha256").mkdir(parents=True)
    (dest / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    for digest, data in blobs.items():
        (dest / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
    manifests = []
    for raw, media_type, notes in entries:
        desc: dict[str, Any] = {"mediaType": media_type, "digest": sha256(raw), "size": len(raw)}
        if notes:
            desc["annotations"] = dict(notes)
        manifests.append(desc)
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
    (dest / "index.json").write_bytes(_json(index))


def tar_directory(src: Path, archive: Path, *, compression: str = "") -> None:
    """Tar ``src`` (sorted, fixed owners and mtimes) into ``archive``, maybe compressed."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(src.rglob("*")):
            name = path.relative_to(src).as_posix()
            if path.is_dir():
                tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
            else:
                data = path.read_bytes()
                info = _info(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(compress(out.getvalue(), compression))


def build_archive(
    archive: Path,
    layers: Sequence[bytes] | None = None,
    *,
    ref: str = "busybox:1",
    compression: str = "gzip",
    archive_compression: str = "",
) -> BuiltImage:
    """Write an OCI archive (tar of an OCI layout) holding one image named ``ref``."""
    layout = archive.with_name(archive.name + ".layout")
    built = build_layout(layout, layers, ref=ref, compression=compression)
    tar_directory(layout, archive, compression=archive_compression)
    shutil.rmtree(layout)
    return built


def docker_archive(
    archive: Path,
    layers: Sequence[bytes] | None = None,
    *,
    repo_tags: Sequence[str] = ("busybox:1",),
    legacy_dirs: bool = False,
) -> BuiltImage:
    """Write a ``docker save``-style archive: manifest.json, <id>.json, uncompressed layers.

    ``legacy_dirs`` lays layers out as ``<n>/layer.tar`` (docker < 25) instead of
    ``<diff_id>.tar`` (podman).
    """
    blobs, raw = image_blobs(layers if layers is not None else [busybox_layer()], compression="")
    built = describe(blobs, raw, repo_tags[0] if repo_tags else "")
    config_name = built.config_digest.split(":", 1)[1] + ".json"
    files: dict[str, bytes] = {config_name: blobs[built.config_digest]}
    layer_names = []
    for n, digest in enumerate(built.layer_digests):
        hexd = digest.split(":", 1)[1]
        name = f"{n:064x}/layer.tar" if legacy_dirs else f"{hexd}.tar"
        files[name] = blobs[digest]
        layer_names.append(name)
    manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_names}]
    files["manifest.json"] = _json(manifest)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = _info(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(out.getvalue())
    return built


def small_layers() -> list[bytes]:
    """Two tiny layers (a file and a directory; an executable script): an image to load,
    save and push that holds something in each layer."""
    return [
        layer_tar({"etc/hostname": b"box\n"}, dirs=("tmp",)),
        layer_tar({"app/run.sh": b"#!/bin/sh\necho hi\n"}, executable=("app/run.sh",)),
    ]
