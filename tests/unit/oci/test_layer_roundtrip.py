"""write_layer then extract_layer gives back the same tree."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from envkit.errors import LayerError
from envkit.oci.layer_reader import PARTIAL_INFIX, extract_layer, extract_layer_atomic
from envkit.oci.layer_writer import Compression, write_layer

EPOCH = 1_650_000_000


def describe(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root``: type, mode, owner, mtime, content or target, and
    which earlier entry it is a hardlink of."""
    seen: dict[tuple[int, int], str] = {}
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            body: object = None
            link_of = ""
            if stat.S_ISREG(st.st_mode):
                body = path.read_bytes()
                link_of = seen.setdefault((st.st_dev, st.st_ino), rel)
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            out[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns // 1_000_000_000,
                body,
                link_of,
            )
    return out


def make_tree(root: Path) -> None:
    (root / "etc" / "conf.d").mkdir(parents=True)
    (root / "etc" / "conf.d" / "a.conf").write_bytes(b"a=1\n")
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "tool", 0o755)
    os.link(root / "bin" / "tool", root / "bin" / "tool-alias")
    (root / "private").mkdir(mode=0o700)
    (root / "private" / "key").write_bytes(b"k")
    os.chmod(root / "private" / "key", 0o600)
    (root / "readonly").mkdir()
    (root / "readonly" / "f").write_bytes(b"r")
    os.chmod(root / "readonly", 0o555)
    (root / "empty").write_bytes(b"")
    (root / "abs-link").symlink_to("/etc/passwd")
    (root / "rel-link").symlink_to("etc/conf.d")
    (root / "dangling").symlink_to("nowhere")
    os.mkfifo(root / "fifo")
    (root / ("long-" + "x" * 200)).write_bytes(b"long")
    (root / "ünïcödé").write_bytes(b"u")
    (root / os.fsdecode(b"latin1-\xe9")).write_bytes(b"not utf-8")
    (root / "big").write_bytes(os.urandom(3 << 20))
    for path in [*root.rglob("*"), root]:
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_roundtrip_gives_an_identical_tree(tmp_path: Path, compression: Compression) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    make_tree(src)
    out = io.BytesIO()
    info = write_layer(src, out, compression=compression)
    out.seek(0)
    report = extract_layer(out, dest)
    assert describe(dest) == describe(src)
    assert report.diff_id == info.diff_id
    assert report.compression == compression
    assert report.skipped == [] and report.notes == []


def test_extract_of_a_rewritten_tree_gives_the_same_digest(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    make_tree(src)
    first = io.BytesIO()
    info = write_layer(src, first)
    first.seek(0)
    extract_layer(first, dest)
    assert write_layer(dest, io.BytesIO()) == info


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_privileged_extraction_restores_owners_and_setuid(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "su").write_bytes(b"x")
    os.chown(src / "su", 1234, 5678)
    os.chmod(src / "su", 0o4755)
    out = io.BytesIO()
    write_layer(src, out)
    out.seek(0)
    extract_layer(out, dest)
    st = (dest / "su").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)


def test_unprivileged_extraction_keeps_caller_owner_and_drops_setid(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "su").write_bytes(b"x")
    os.chmod(src / "su", 0o6755)
    (src / "shared").mkdir()
    os.chmod(src / "shared", 0o2775)
    out = io.BytesIO()
    write_layer(src, out)
    out.seek(0)
    report = extract_layer(out, dest, unprivileged=True)
    st = (dest / "su").stat()
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert stat.S_IMODE((dest / "shared").stat().st_mode) == 0o2775  # directories keep setgid
    assert report.notes == ["set-id bits dropped (file owned by the extractor): 1 entry"]


def test_atomic_extraction_renames_into_place(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    make_tree(src)
    out = io.BytesIO()
    write_layer(src, out)
    out.seek(0)
    dest = tmp_path / "snapshots" / "one"
    extract_layer_atomic(out, dest)
    assert describe(dest) == describe(src)
    assert not [p for p in dest.parent.iterdir() if PARTIAL_INFIX in p.name]


def test_atomic_extraction_leaves_nothing_on_failure(tmp_path: Path) -> None:
    good = io.BytesIO()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x" * 10000)
    write_layer(tmp_path / "src", good, compression="none")
    truncated = io.BytesIO(good.getvalue()[:2048])
    parent = tmp_path / "snapshots"
    with pytest.raises(LayerError):
        extract_layer_atomic(truncated, parent / "one")
    assert list(parent.iterdir()) == []


def test_atomic_extraction_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old").write_bytes(b"")
    with pytest.raises(LayerError, match="not empty"):
        extract_layer_atomic(io.BytesIO(b""), dest)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
@pytest.mark.parametrize("flag", ["--gzip", "--xz", "--bzip2"])
def test_extracts_what_gnu_tar_writes_like_gnu_tar(tmp_path: Path, flag: str) -> None:
    src, ours, theirs = tmp_path / "src", tmp_path / "ours", tmp_path / "theirs"
    for path in (src, ours, theirs):
        path.mkdir()
    make_tree(src)
    archive = tmp_path / "layer.tar"
    tar = ["tar", "--format=posix", "--numeric-owner", flag]
    subprocess.run([*tar, "-cf", str(archive), "-C", str(src), "."], check=True)
    subprocess.run(
        [*tar, "-xpf", str(archive), "-C", str(theirs)], check=True, stderr=subprocess.DEVNULL
    )
    with open(archive, "rb") as stream:
        report = extract_layer(stream, ours)
    assert describe(ours) == describe(theirs) == describe(src)
    assert report.compression == flag.lstrip("-")
