"""Applying a layer onto the layers below it: whiteouts, opaque dirs, duplicates, metadata."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from envkit.oci.layer_reader import extract_layer
from tests.unit.hostile_tars import TarBuilder


def _lower(dest: Path) -> None:
    (dest / "etc" / "old.d").mkdir(parents=True)
    (dest / "etc" / "old.d" / "x").write_bytes(b"x")
    (dest / "etc" / "passwd").write_bytes(b"root\n")
    (dest / "etc" / "hosts").write_bytes(b"lower hosts\n")
    (dest / "var" / "cache" / "deep").mkdir(parents=True)
    (dest / "var" / "cache" / "deep" / "f").write_bytes(b"f")
    (dest / "var" / "cache" / "top").write_bytes(b"t")
    (dest / "var" / "keep").write_bytes(b"k")


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_whiteouts_remove_lower_files_and_trees(tmp_path: Path) -> None:
    _lower(tmp_path)
    data = (
        TarBuilder()
        .file("etc/.wh.passwd", b"")
        .file("etc/.wh.old.d", b"")
        .file("etc/.wh.not-there", b"")
        .file("nodir/.wh.x", b"")
        .bytes()
    )
    report = extract_layer(io.BytesIO(data), tmp_path)
    assert _listing(tmp_path) == [
        "etc",
        "etc/hosts",
        "var",
        "var/cache",
        "var/cache/deep",
        "var/cache/deep/f",
        "var/cache/top",
        "var/keep",
    ]
    assert report.whiteouts == 4


def test_whiteout_never_removes_its_own_layer_content(tmp_path: Path) -> None:
    data = TarBuilder().file("new", b"mine").file(".wh.new", b"").bytes()
    extract_layer(io.BytesIO(data), tmp_path)
    assert (tmp_path / "new").read_bytes() == b"mine"


def test_opaque_dir_hides_lower_but_keeps_this_layer(tmp_path: Path) -> None:
    _lower(tmp_path)
    data = (
        TarBuilder()
        .dir("var")
        .file("var/before", b"b")  # written before the marker: kept all the same
        .dir("var/cache")  # this layer's dir merged onto a lower one
        .file("var/cache/mine", b"m")
        .file("var/.wh..wh..opq", b"")
        .file("var/after", b"a")
        .bytes()
    )
    report = extract_layer(io.BytesIO(data), tmp_path)
    assert [p for p in _listing(tmp_path) if p.startswith("var")] == [
        "var",
        "var/after",
        "var/before",
        "var/cache",
        "var/cache/mine",
    ]
    assert (tmp_path / "etc" / "hosts").exists()
    assert report.opaque_dirs == 1


def test_later_entries_replace_earlier_and_lower_ones(tmp_path: Path) -> None:
    _lower(tmp_path)
    data = (
        TarBuilder()
        .file("etc/hosts", b"one\n")
        .file("etc/hosts", b"two\n")
        .file("var/cache", b"a file now")  # replaces a lower directory tree
        .symlink("etc/old.d", "/elsewhere")  # a directory replaced by a symlink
        .dir("var/keep")  # a file replaced by a directory
        .bytes()
    )
    extract_layer(io.BytesIO(data), tmp_path)
    assert (tmp_path / "etc" / "hosts").read_bytes() == b"two\n"
    assert (tmp_path / "var" / "cache").read_bytes() == b"a file now"
    assert os.readlink(tmp_path / "etc" / "old.d") == "/elsewhere"
    assert (tmp_path / "var" / "keep").is_dir()


def test_directory_metadata_is_applied_after_children(tmp_path: Path) -> None:
    data = TarBuilder().dir("ro", mode=0o555).file("ro/f", b"x").bytes()
    extract_layer(io.BytesIO(data), tmp_path, unprivileged=True)
    assert stat.S_IMODE((tmp_path / "ro").stat().st_mode) == 0o555
    assert (tmp_path / "ro").stat().st_mtime == 1_700_000_000
    assert (tmp_path / "ro" / "f").read_bytes() == b"x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
@pytest.mark.parametrize("mode", [0o555, 0o000])
def test_unprivileged_writes_into_read_only_lower_dir(tmp_path: Path, mode: int) -> None:
    (tmp_path / "ro" / "sub").mkdir(parents=True)
    (tmp_path / "ro" / "old").write_bytes(b"o")
    os.chmod(tmp_path / "ro" / "sub", mode)
    os.chmod(tmp_path / "ro", mode)
    try:
        data = (
            TarBuilder()
            .file("ro/new", b"n")
            .file("ro/sub/deeper/new", b"d")
            .file("ro/.wh.old", b"")
            .bytes()
        )
        extract_layer(io.BytesIO(data), tmp_path, unprivileged=True)
        assert stat.S_IMODE((tmp_path / "ro").stat().st_mode) == mode
        os.chmod(tmp_path / "ro", 0o755)
        assert stat.S_IMODE((tmp_path / "ro" / "sub").stat().st_mode) == mode
        os.chmod(tmp_path / "ro" / "sub", 0o755)
        assert (tmp_path / "ro" / "new").read_bytes() == b"n"
        assert (tmp_path / "ro" / "sub" / "deeper" / "new").read_bytes() == b"d"
        assert not (tmp_path / "ro" / "old").exists()
    finally:
        os.chmod(tmp_path / "ro", 0o755)
        os.chmod(tmp_path / "ro" / "sub", 0o755)


def test_implicit_parents_and_root_entry(tmp_path: Path) -> None:
    data = TarBuilder().dir("./", mode=0o750).file("a/b/c", b"c").bytes()
    extract_layer(io.BytesIO(data), tmp_path)
    assert (tmp_path / "a" / "b" / "c").read_bytes() == b"c"
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o750


def test_aufs_metadata_and_overlay_xattrs_are_not_applied(tmp_path: Path) -> None:
    data = (
        TarBuilder()
        .file(".wh..wh.plnk/1234.5", b"")
        .dir("d", xattrs={"user.overlay.opaque": "y"})
        .bytes()
    )
    report = extract_layer(io.BytesIO(data), tmp_path)
    assert report.skipped == ["/.wh..wh.plnk/1234.5: aufs metadata, ignored"]
    assert os.listxattr(tmp_path / "d") == []
    assert report.notes == ["xattr user.overlay.opaque refused (overlayfs bookkeeping): 1 entry"]


def test_report_counts_and_diff_id(tmp_path: Path) -> None:
    data = TarBuilder().file("a").dir("b").symlink("c", "a").bytes()
    report = extract_layer(io.BytesIO(data), tmp_path)
    assert report.entries == 3
    assert report.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert report.size == len(data)
    assert report.compression == "none"


def test_privileged_extraction_creates_no_device_nodes(tmp_path: Path) -> None:
    # Root could mknod it; a node in a snapshot would be the host's /dev/null to anyone
    # reaching the store (issue 14). The runtime provides /dev itself.
    data = TarBuilder().dir("dev").device("dev/null", 1, 3).bytes()
    report = extract_layer(io.BytesIO(data), tmp_path, unprivileged=False)
    assert os.listdir(tmp_path / "dev") == []
    assert report.skipped == ["/dev/null: device node, not created"]


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar missing")
@pytest.mark.parametrize("fmt", ["pax", "gnu"])
def test_gnu_tar_sparse_files_extract_sparse(tmp_path: Path, fmt: str) -> None:
    """What ``tar --sparse`` writes (PAX 1.0, or the old GNU ``S`` type) stays sparse."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(4 << 30)
        os.pwrite(f.fileno(), b"middle", 2 << 30)
        os.pwrite(f.fileno(), b"end", (4 << 30) - 3)
    (src / "small").write_bytes(b"small\n")
    archive = tmp_path / "layer.tar"
    done = subprocess.run(
        ["tar", "--sparse", f"--format={fmt}", "-cf", str(archive), "-C", str(src), "big", "small"],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0 or b"unrecognized option" in done.stderr:
        pytest.skip(f"this tar cannot write sparse archives: {done.stderr!r}")
    assert archive.stat().st_size < 1 << 20
    dest = tmp_path / "dest"
    with open(archive, "rb") as stream:
        extract_layer(stream, dest)
    st = (dest / "big").stat()
    assert (st.st_size, st.st_blocks * 512 < 1 << 20) == (4 << 30, True)
    with open(dest / "big", "rb") as f:
        assert os.pread(f.fileno(), 8, (2 << 30) - 1) == b"\0middle\0"
        assert os.pread(f.fileno(), 10, (4 << 30) - 10) == b"\0" * 7 + b"end"
    assert (dest / "small").read_bytes() == b"small\n"
