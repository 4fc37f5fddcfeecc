"""Layer tars written from a directory: deterministic, PAX, digests computed in one pass."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from envkit.errors import LayerError
from envkit.oci.layer_writer import LayerInfo, write_layer
from envkit.oci.types import MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_LAYER_ZSTD

EPOCH = 1_600_000_000


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def _write(src: Path, **kwargs: object) -> tuple[LayerInfo, bytes]:
    out = io.BytesIO()
    info = write_layer(src, out, **kwargs)  # type: ignore[arg-type]
    return info, out.getvalue()


def _set_user_xattr(path: Path, key: str, value: bytes) -> None:
    try:
        os.setxattr(path, key, value)
    except OSError as exc:
        pytest.skip(f"{key} xattrs not supported here: {exc.strerror}")


def _tree(root: Path, order: list[str]) -> None:
    """A small tree, its entries created in ``order`` (names of the files)."""
    (root / "dir" / "sub").mkdir(parents=True)
    for name in order:
        (root / "dir" / name).write_bytes(name.encode() * 3)
    (root / "link").symlink_to("dir/b")
    os.link(root / "dir" / "a", root / "hard")
    (root / "dir" / "sub" / "x").write_bytes(b"x")
    os.chmod(root / "dir" / "a", 0o640)


def test_entries_are_sorted_pax_numeric_owner_and_relative(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _tree(src, ["c", "a", "b"])
    (src / "a-b").write_bytes(b"")
    info, data = _write(src, compression="none")
    names = [m.name for m in _members(data)]
    # Depth first, each directory's children by the bytes of their names.
    assert names == [
        "a-b",
        "dir",
        "dir/a",
        "dir/b",
        "dir/c",
        "dir/sub",
        "dir/sub/x",
        "hard",
        "link",
    ]
    assert info.diff_id == info.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert str(tmp_path).encode() not in data
    for member in _members(data):
        assert member.uname == "" and member.gname == ""
        assert member.uid == os.getuid() and member.gid == os.getgid()
    assert b"ustar\x0000" in data[:512]  # POSIX (PAX) header, not the GNU format


def test_file_types_modes_hardlinks_and_symlinks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _tree(src, ["a", "b", "c"])
    os.mkfifo(src / "fifo")
    os.chmod(src / "fifo", 0o620)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "sock"))
        info, data = _write(src, compression="none")
    members = {m.name: m for m in _members(data)}
    assert members["dir/a"].mode == 0o640 and members["dir/a"].isreg()
    assert members["hard"].islnk() and members["hard"].linkname == "dir/a"
    assert members["link"].issym() and members["link"].linkname == "dir/b"
    assert members["fifo"].isfifo() and members["fifo"].mode == 0o620
    assert members["dir"].isdir()
    assert "sock" not in members and info.skipped == ("sock",)


def test_determinism_across_creation_order_and_mtimes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _tree(one, ["a", "b", "c"])
    _tree(two, ["c", "b", "a"])
    touched = list(two.rglob("*"))
    assert len(touched) == 8  # dir, sub, a, b, c, sub/x, link, hard
    for path in touched:
        os.utime(path, (EPOCH + 999, EPOCH + 12345), follow_symlinks=False)
    for compression in ("zstd", "gzip", "none"):
        first, _ = _write(one, compression=compression, source_date_epoch=EPOCH)
        second, _ = _write(two, compression=compression, source_date_epoch=EPOCH)
        assert first == second


def test_source_date_epoch_clamps_only_newer_mtimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "old").write_bytes(b"")
    (src / "new").write_bytes(b"")
    os.utime(src / "old", (0, EPOCH - 100))
    os.utime(src / "new", (0, EPOCH + 100))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    _, data = _write(src, compression="none")
    mtimes = {m.name: m.mtime for m in _members(data)}
    assert mtimes == {"new": EPOCH, "old": EPOCH - 100}
    # An explicit argument wins over the environment.
    _, data = _write(src, compression="none", source_date_epoch=EPOCH - 1000)
    assert {m.mtime for m in _members(data)} == {EPOCH - 1000}
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    _, data = _write(src, compression="none")
    assert {m.name: m.mtime for m in _members(data)}["new"] == EPOCH + 100


def test_bad_source_date_epoch_and_compression_are_layer_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(LayerError, match="SOURCE_DATE_EPOCH") as err:
        _write(tmp_path)
    assert err.value.hint
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    with pytest.raises(LayerError, match="compression"):
        _write(tmp_path, compression="lz4")
    with pytest.raises(LayerError, match="cannot read layer source"):
        _write(tmp_path / "missing")


@pytest.mark.parametrize(
    ("compression", "media_type"),
    [("zstd", MT_OCI_LAYER_ZSTD), ("gzip", MT_OCI_LAYER_GZIP), ("none", MT_OCI_LAYER)],
)
def test_compressed_digest_and_diff_id_in_one_pass(
    tmp_path: Path, compression: str, media_type: str
) -> None:
    _tree(tmp_path, ["a", "b", "c"])
    info, data = _write(tmp_path, compression=compression)
    assert info.media_type == media_type
    assert info.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    if compression == "zstd":
        plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    elif compression == "gzip":
        import gzip

        plain = gzip.decompress(data)
        assert data[4:8] == b"\x00\x00\x00\x00"  # reproducible gzip header: mtime 0
    else:
        plain = data
    assert info.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert info.descriptor().digest == info.digest


def test_xattrs_kept_but_overlay_bookkeeping_dropped(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    _set_user_xattr(tmp_path / "f", "user.note", b"\xff\x00binary")
    _set_user_xattr(tmp_path / "f", "user.overlay.origin", b"x")
    _, data = _write(tmp_path, compression="none")
    (member,) = _members(data)
    assert member.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == (
        b"\xff\x00binary"
    )
    assert not any("overlay" in key for key in member.pax_headers)


def test_overlay_upper_opaque_dir_via_user_xattr(tmp_path: Path) -> None:
    (tmp_path / "opq").mkdir()
    (tmp_path / "opq" / "kept").write_bytes(b"k")
    _set_user_xattr(tmp_path / "opq", "user.overlay.opaque", b"y")
    _, data = _write(tmp_path, compression="none", overlay_upper=True)
    names = [m.name for m in _members(data)]
    assert names == ["opq", "opq/.wh..wh..opq", "opq/kept"]
    # Without overlay_upper the xattr is bookkeeping: dropped, no marker.
    _, data = _write(tmp_path, compression="none")
    assert [m.name for m in _members(data)] == ["opq", "opq/kept"]


def test_overlay_upper_xwhiteout_file(tmp_path: Path) -> None:
    (tmp_path / "gone").write_bytes(b"")
    _set_user_xattr(tmp_path / "gone", "user.overlay.whiteout", b"")
    _, data = _write(tmp_path, compression="none", overlay_upper=True)
    (member,) = _members(data)
    assert member.name == ".wh.gone" and member.isreg() and member.size == 0


def test_overlay_upper_redirect_is_refused(tmp_path: Path) -> None:
    (tmp_path / "moved").mkdir()
    _set_user_xattr(tmp_path / "moved", "user.overlay.redirect", b"/old")
    with pytest.raises(LayerError, match="redirect") as err:
        _write(tmp_path, overlay_upper=True)
    assert "redirect_dir=off" in (err.value.hint or "")


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a whiteout device needs CAP_MKNOD")
def test_overlay_upper_whiteout_device_and_trusted_opaque(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.mknod(tmp_path / "d" / "deleted", 0o600 | 0o020000, os.makedev(0, 0))
    os.setxattr(tmp_path / "d", "trusted.overlay.opaque", b"y")
    os.mknod(tmp_path / "null", 0o666 | 0o020000, os.makedev(1, 3))
    _, data = _write(tmp_path, compression="none", overlay_upper=True)
    members = {m.name: m for m in _members(data)}
    assert list(members) == ["d", "d/.wh..wh..opq", "d/.wh.deleted", "null"]
    assert members["d/.wh.deleted"].isreg() and members["d/.wh.deleted"].size == 0
    assert members["null"].ischr() and (members["null"].devmajor, members["null"].devminor) == (
        1,
        3,
    )
    assert "SCHILY.xattr.trusted.overlay.opaque" not in members["d"].pax_headers
    # Outside overlay mode a 0/0 device is just a device.
    _, data = _write(tmp_path, compression="none")
    assert [m.name for m in _members(data)] == ["d", "d/deleted", "null"]


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
def test_gnu_tar_reads_what_envkit_writes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _tree(src, ["a", "b", "c"])
    (src / ("long-" + "n" * 150)).write_bytes(b"long name")
    (src / "ünïcode").write_bytes(b"u")
    _, data = _write(src, compression="gzip")
    (tmp_path / "layer.tgz").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(tmp_path / "layer.tgz"), "-C", str(out)], check=True)
    assert (out / ("long-" + "n" * 150)).read_bytes() == b"long name"
    assert (out / "ünïcode").read_bytes() == b"u"
    assert os.readlink(out / "link") == "dir/b"
    assert os.path.samefile(out / "hard", out / "dir" / "a")
