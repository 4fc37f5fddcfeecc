"""Reading .debs: ar members, control.tar, and data.tar unpacked with dpkg's semantics,
never outside the root."""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from envkit.builtin.debian.deb import ar_members, control_fields, control_files, extract_data
from envkit.errors import DebFormatError
from tests.unit.builtin.debian.fixtures import deb_bytes, entry, need

CONTROL = "Package: hello\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@e>\nDescription: x\n"


@pytest.fixture
def built_deb(tmp_path: Path) -> Path:
    """A real .deb from ``dpkg-deb --build``: a binary, a symlink, a hardlink, a script."""
    need("dpkg-deb")
    src = tmp_path / "pkg"
    (src / "DEBIAN").mkdir(parents=True)
    (src / "DEBIAN/control").write_text(CONTROL)
    (src / "DEBIAN/postinst").write_text("#!/bin/sh\nexit 0\n")
    (src / "DEBIAN/postinst").chmod(0o755)
    (src / "bin").mkdir()
    (src / "bin/hello").write_text("#!/bin/sh\necho hello\n")
    (src / "bin/hello").chmod(0o755)
    (src / "bin/hi").symlink_to("hello")
    os.link(src / "bin/hello", src / "bin/hello2")
    (src / "usr/share/doc/hello").mkdir(parents=True)
    (src / "usr/share/doc/hello/copyright").write_text("free\n")
    out = tmp_path / "hello.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(src), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_ar_members_and_control(built_deb: Path) -> None:
    with open(built_deb, "rb") as f:
        names = [m.name for m in ar_members(f, str(built_deb))]
    assert names[0] == "debian-binary" and names[1].startswith("control.tar")
    assert names[2] == "data.tar.xz"
    assert control_fields(built_deb)["Package"] == "hello"
    assert control_files(built_deb)["postinst"].startswith(b"#!/bin/sh")


def test_data_follows_merged_usr_symlink_like_dpkg(built_deb: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    result = extract_data(built_deb, root, chown=False)
    assert (root / "bin").is_symlink()  # kept, not replaced by a directory
    assert (root / "usr/bin/hello").read_text() == "#!/bin/sh\necho hello\n"
    assert os.readlink(root / "usr/bin/hi") == "hello"
    assert os.stat(root / "usr/bin/hello2").st_ino == os.stat(root / "usr/bin/hello").st_ino
    assert (root / "usr/bin/hello").stat().st_mode & 0o777 == 0o755
    assert "/bin/hello" in result.paths and "/usr/share/doc/hello/copyright" in result.paths


def hostile(tmp_path: Path, members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path = tmp_path / "evil.deb"
    path.write_bytes(deb_bytes(members, CONTROL))
    return path


@pytest.mark.parametrize(
    "members",
    [
        [(entry("../escape"), b"x")],
        [(entry("./a/../../escape"), b"x")],
        [(entry("/abs/../../escape"), b"x")],
    ],
    ids=["dotdot", "nested-dotdot", "absolute-dotdot"],
)
def test_dotdot_members_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DebFormatError, match="climbs out"):
        extract_data(hostile(tmp_path, members), root, chown=False)
    assert not (tmp_path / "escape").exists()


def test_symlinks_are_resolved_inside_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    members = [
        (entry("./abs", tarfile.SYMTYPE, str(outside)), None),
        (entry("./abs/owned"), b"x"),
        (entry("./rel", tarfile.SYMTYPE, "../../../outside"), None),
        (entry("./rel/owned2"), b"y"),
        (entry("./etc/passwd", tarfile.SYMTYPE, "/etc/passwd"), None),
        (entry("./etc/passwd"), b"mine"),  # replaces the link, never writes through it
    ]
    extract_data(hostile(tmp_path, members), root, chown=False)
    assert list(outside.iterdir()) == []
    assert (root / tmp_path.relative_to("/") / "outside/owned").read_bytes() == b"x"
    assert (root / "outside/owned2").read_bytes() == b"y"
    assert not (root / "etc/passwd").is_symlink()
    assert (root / "etc/passwd").read_bytes() == b"mine"


def test_hardlink_to_a_file_outside_is_impossible(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host")
    root = tmp_path / "root"
    root.mkdir()
    members = [
        (entry("./up", tarfile.SYMTYPE, ".."), None),
        (entry("./link", tarfile.LNKTYPE, "up/secret"), None),
    ]
    with pytest.raises(DebFormatError, match=r"cannot unpack '\./link'"):
        extract_data(hostile(tmp_path, members), root, chown=False)
    assert not (root / "link").exists()
    assert secret.stat().st_nlink == 1


def test_devices_are_skipped_and_garbage_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    dev = entry("./dev/null", tarfile.CHRTYPE)
    result = extract_data(hostile(tmp_path, [(dev, None)]), root, chown=False)
    assert result.skipped == ["/dev/null"] and not (root / "dev/null").exists()
    junk = tmp_path / "junk.deb"
    junk.write_bytes(b"not an archive")
    with pytest.raises(DebFormatError, match=r"not a \.deb"):
        extract_data(junk, root)


def _deb(tmp_path: Path, name: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    path = tmp_path / f"{name}.deb"
    path.write_bytes(deb_bytes(members, CONTROL))
    return path


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else p.read_text()
        for p in sorted(root.rglob("*"))
    }


def test_parallel_unpack_of_packages_sharing_directories_equals_one_by_one(
    tmp_path: Path,
) -> None:
    from envkit.builtin.debian.bootstrap import _unpack_all

    dirs = [entry(f"./usr/share/{d}", tarfile.DIRTYPE, mode=0o755) for d in ("", "doc", "man")]
    debs = [
        _deb(tmp_path, f"p{i}", [*((d, None) for d in dirs),
                                 (entry(f"./usr/share/doc/p{i}"), f"{i}\n".encode())])
        for i in range(8)
    ]  # fmt: skip
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    parallel.mkdir()
    serial.mkdir()
    _unpack_all(debs, parallel)
    for deb in debs:
        extract_data(deb, serial, chown=False)
    assert _tree(parallel) == _tree(serial)
    assert (parallel / "usr/share/doc/p7").read_text() == "7\n"


def test_parallel_unpack_still_raises_a_real_conflict(tmp_path: Path) -> None:
    from envkit.builtin.debian.bootstrap import _unpack_all

    root = tmp_path / "root"
    (root / "usr/lib/full").mkdir(parents=True)
    (root / "usr/lib/full/kept").write_text("x")
    bad = _deb(tmp_path, "bad", [(entry("./usr/lib/full"), b"a file over a full directory")])
    with pytest.raises(DebFormatError, match="non-empty directory"):
        _unpack_all([bad], root)
