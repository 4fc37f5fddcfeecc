"""A corpus of hostile layer tars, built in memory, and the "nothing escaped" check.

Every case is built against ``outside``: an absolute directory next to the extraction
root that holds a ``secret`` file, so that escapes aim at something real. A case either
extracts (its ``check`` then looks at the result) or is refused with ``LayerError``;
in both outcomes nothing outside the root may change (:func:`snapshot_outside`).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SECRET = b"top secret\n"


class TarBuilder:
    """Write tar entries with full control over names, types and targets."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=fmt)  # noqa: SIM115

    def _add(self, info: tarfile.TarInfo, data: bytes | None = None) -> TarBuilder:
        info.mtime = 1_700_000_000
        if data is not None:
            info.size = len(data)
            self._tar.addfile(info, io.BytesIO(data))
        else:
            self._tar.addfile(info)
        return self

    def file(self, name: str, data: bytes = b"pwned\n", mode: int = 0o644) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.mode = mode
        return self._add(info, data)

    def raw_name_file(self, name: str, data: bytes = b"pwned\n") -> TarBuilder:
        """A file whose PAX ``path`` is ``name`` verbatim (NUL bytes included)."""
        info = tarfile.TarInfo("placeholder")
        info.pax_headers = {"path": name}
        return self._add(info, data)

    def dir(self, name: str, mode: int = 0o755, xattrs: dict[str, str] | None = None) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        info.pax_headers = {"SCHILY.xattr." + k: v for k, v in (xattrs or {}).items()}
        return self._add(info)

    def symlink(self, name: str, target: str) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        return self._add(info)

    def hardlink(self, name: str, target: str) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE
        info.linkname = target
        return self._add(info)

    def device(self, name: str, major: int, minor: int, *, block: bool = False) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.BLKTYPE if block else tarfile.CHRTYPE
        info.devmajor, info.devminor = major, minor
        info.mode = 0o666
        return self._add(info)

    def fifo(self, name: str) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type = tarfile.FIFOTYPE
        info.mode = 0o644
        return self._add(info)

    def sparse(
        self, name: str, size: int, segments: list[tuple[int, bytes]], fmt: str = "pax1.0"
    ) -> TarBuilder:
        """A GNU sparse file of apparent ``size``: data ``segments`` at their offsets,
        holes elsewhere, in GNU tar's ``fmt``: ``pax1.0`` (GNU tar's default with
        ``--format=pax``), ``pax0.1``, ``pax0.0`` or ``gnu`` (the old ``S`` type)."""
        data = b"".join(chunk for _, chunk in segments)
        pairs = [(offset, len(chunk)) for offset, chunk in segments]
        if fmt == "pax1.0":
            listed = [str(len(pairs)), *(str(n) for pair in pairs for n in pair)]
            sparse_map = "".join(f"{n}\n" for n in listed).encode()
            sparse_map += b"\0" * (-len(sparse_map) % tarfile.BLOCKSIZE)
            info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
            info.pax_headers = {
                "GNU.sparse.major": "1",
                "GNU.sparse.minor": "0",
                "GNU.sparse.name": name,
                "GNU.sparse.realsize": str(size),
            }
            info.mode = 0o644
            return self._add(info, sparse_map + data)
        if fmt == "pax0.1":
            info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
            info.pax_headers = {
                "GNU.sparse.numblocks": str(len(pairs)),
                "GNU.sparse.map": ",".join(str(n) for pair in pairs for n in pair),
                "GNU.sparse.size": str(size),
                "GNU.sparse.name": name,
            }
            info.mode = 0o644
            return self._add(info, data)
        if fmt == "pax0.0":
            records = [("GNU.sparse.size", str(size)), ("GNU.sparse.numblocks", str(len(pairs)))]
            for offset, length in pairs:
                records += [
                    ("GNU.sparse.offset", str(offset)),
                    ("GNU.sparse.numbytes", str(length)),
                ]
            records.append(("path", name))
            header = tarfile.TarInfo("././@PaxHeader")
            header.type = tarfile.XHDTYPE
            self._add(header, b"".join(_pax_record(k, v) for k, v in records))
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            return self._add(info, data)
        assert fmt == "gnu" and len(pairs) <= 4, "old GNU: up to 4 segments in the header"
        info = tarfile.TarInfo(name)
        info.type = tarfile.GNUTYPE_SPARSE
        info.mode = 0o644
        info.size = len(data)
        info.mtime = 1_700_000_000
        block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
        for index, (offset, length) in enumerate(pairs):
            at = 386 + 24 * index
            block[at : at + 24] = _number(offset) + _number(length)
        block[483:495] = _number(size)
        block[148:156] = b" " * 8
        block[148:155] = b"%06o\0" % sum(block)
        return self.raw(bytes(block) + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE))

    def raw(self, blocks: bytes) -> TarBuilder:
        """Whole 512-byte blocks, written as they are."""
        assert len(blocks) % tarfile.BLOCKSIZE == 0
        fileobj = self._tar.fileobj
        assert fileobj is not None
        fileobj.write(blocks)
        self._tar.offset += len(blocks)
        return self

    def bytes(self) -> bytes:
        self._tar.close()
        return self._buf.getvalue()


def _number(value: int) -> bytes:
    """A 12-byte numeric header field (octal, or GNU's base-256 when too large)."""
    encoded: bytes = tarfile.itn(value, 12, tarfile.GNU_FORMAT)  # type: ignore[attr-defined]
    return encoded


def _pax_record(key: str, value: str) -> bytes:
    """One ``"<length> key=value\\n"`` record of a PAX extended header."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


@dataclass(frozen=True)
class HostileTar:
    """One attack: ``expect`` is ``"reject"`` (LayerError) or ``"extract"``."""

    name: str
    data: bytes
    expect: str
    check: Callable[[Path], None] | None = field(default=None, compare=False)
    #: Builds the "lower layers" in the root before extraction.
    lower: Callable[[Path, Path], None] | None = field(default=None, compare=False)


def _rel(path: Path) -> str:
    return str(path).lstrip("/")


def _exists_inside(*parts: str) -> Callable[[Path], None]:
    def check(dest: Path) -> None:
        target = dest.joinpath(*parts)
        assert target.is_file() and not target.is_symlink(), f"{target} missing"

    return check


def _small_on_disk(name: str, size: int) -> Callable[[Path], None]:
    def check(dest: Path) -> None:
        st = (dest / name).stat()
        assert st.st_size == size and st.st_blocks * 512 < 1 << 20, st

    return check


def _lower_symlink_out(dest: Path, outside: Path) -> None:
    (dest / "lowerlink").symlink_to(outside)


def corpus(outside: Path) -> list[HostileTar]:
    """Every hostile case, aimed at the directory ``outside``."""
    out = str(outside)
    secret = f"{out}/secret"
    sibling = f"../{outside.name}"
    long_component = "x" * 300
    deep = "/".join(["d"] * 800)
    long_path = "/".join(["p" * 99] * 100)  # 9,999 characters: longer than PATH_MAX
    cases = [
        HostileTar("dotdot-file", TarBuilder().file(f"{sibling}/pwned").bytes(), "reject"),
        HostileTar(
            "dotdot-inner", TarBuilder().file(f"a/../../{outside.name}/x").bytes(), "reject"
        ),
        HostileTar(
            "dotdot-overwrite-secret",
            TarBuilder().file(f"../{outside.name}/secret").bytes(),
            "reject",
        ),
        HostileTar(
            "absolute-path",
            TarBuilder().file(f"{out}/abs").bytes(),
            "extract",
            _exists_inside(_rel(outside), "abs"),
        ),
        HostileTar(
            "absolute-etc-passwd",
            TarBuilder().file("/etc/passwd", b"root::0:0::/:/bin/sh\n").bytes(),
            "extract",
            _exists_inside("etc", "passwd"),
        ),
        HostileTar(
            "symlink-to-root-then-file",
            TarBuilder().symlink("root", "/").file(f"root/{_rel(outside)}/pwned").bytes(),
            "reject",
        ),
        HostileTar(
            "symlink-to-outside-then-file",
            TarBuilder().symlink("link", out).file("link/pwned").bytes(),
            "reject",
        ),
        HostileTar(
            "symlink-relative-up-then-file",
            TarBuilder().symlink("link", f"../{outside.name}").file("link/pwned").bytes(),
            "reject",
        ),
        HostileTar(
            "symlink-to-secret-then-overwrite",
            TarBuilder().symlink("s", secret).file("s", b"overwritten\n").bytes(),
            "extract",
            _exists_inside("s"),
        ),
        HostileTar(
            "chained-symlinks-then-file",
            TarBuilder()
            .symlink("a", "b")
            .symlink("b", "c")
            .symlink("c", out)
            .file("a/pwned")
            .bytes(),
            "reject",
        ),
        HostileTar(
            "symlinked-parent-dir",
            TarBuilder().dir("d").symlink("d/l", out).file("d/l/x/y").bytes(),
            "reject",
        ),
        HostileTar(
            "dir-replaced-by-symlink",
            TarBuilder().dir("d").file("d/ok").symlink("d", out).file("d/pwned").bytes(),
            "reject",
        ),
        HostileTar(
            "symlink-replaced-by-dir",
            TarBuilder().symlink("d", out).dir("d").file("d/f").bytes(),
            "extract",
            _exists_inside("d", "f"),
        ),
        HostileTar(
            "hardlink-to-etc-passwd",
            TarBuilder().hardlink("pw", "/etc/passwd").file("pw", b"owned\n").bytes(),
            "reject",
        ),
        HostileTar(
            "hardlink-to-outside-secret",
            TarBuilder().hardlink("h", secret).bytes(),
            "reject",
        ),
        HostileTar(
            "hardlink-dotdot",
            TarBuilder().hardlink("h", f"../{outside.name}/secret").bytes(),
            "reject",
        ),
        HostileTar(
            "hardlink-to-symlink-pointing-out",
            TarBuilder().symlink("s", secret).hardlink("h", "s").file("h", b"over\n").bytes(),
            "extract",
            _exists_inside("h"),
        ),
        HostileTar(
            "hardlink-through-symlinked-dir",
            TarBuilder().symlink("l", out).hardlink("h", "l/secret").bytes(),
            "reject",
        ),
        HostileTar(
            "hardlink-to-directory",
            TarBuilder().dir("etc").hardlink("h", "etc").bytes(),
            "reject",
        ),
        HostileTar(
            "hardlink-to-itself",
            TarBuilder().hardlink("h", "h").bytes(),
            "reject",
        ),
        HostileTar(
            "device-nodes",
            TarBuilder()
            .device("dev/mem", 1, 1)
            .device("dev/sda", 8, 0, block=True)
            .fifo("dev/fifo")
            .bytes(),
            "extract",
        ),
        HostileTar("whiteout-dotdot", TarBuilder().file(".wh...", b"").bytes(), "reject"),
        HostileTar("whiteout-empty", TarBuilder().file("a/.wh.", b"").bytes(), "reject"),
        HostileTar(
            "whiteout-in-parent-dir",
            TarBuilder().file(f"../.wh.{outside.name}", b"").bytes(),
            "reject",
        ),
        HostileTar(
            "whiteout-absolute-outside",
            TarBuilder().file(f"{out}/.wh.secret", b"").bytes(),
            "extract",
        ),
        HostileTar(
            "whiteout-through-symlink",
            TarBuilder().symlink("l", out).file("l/.wh.secret", b"").bytes(),
            "reject",
        ),
        HostileTar(
            "opaque-through-symlink",
            TarBuilder().symlink("l", out).file("l/.wh..wh..opq", b"").bytes(),
            "reject",
        ),
        HostileTar(
            "whiteout-of-symlink-to-outside",
            TarBuilder().file(".wh.lowerlink", b"").bytes(),
            "extract",
            lower=_lower_symlink_out,
        ),
        HostileTar(
            "file-through-lower-symlink",
            TarBuilder().file("lowerlink/pwned").bytes(),
            "reject",
            lower=_lower_symlink_out,
        ),
        HostileTar(
            "opaque-root-with-lower-symlink",
            TarBuilder().file(".wh..wh..opq", b"").file("new").bytes(),
            "extract",
            _exists_inside("new"),
            lower=_lower_symlink_out,
        ),
        HostileTar("nul-in-name", TarBuilder().raw_name_file("a\x00/../../x").bytes(), "reject"),
        HostileTar(
            "very-long-component",
            TarBuilder().file(long_component).bytes(),
            "reject",
        ),
        HostileTar(
            "very-deep-path",
            TarBuilder().file(f"{deep}/leaf").bytes(),
            "extract",
            _exists_inside(*deep.split("/"), "leaf"),
        ),
        HostileTar(
            "duplicate-entries",
            TarBuilder()
            .file("f", b"one")
            .file("f", b"two")
            .dir("d")
            .file("d", b"now a file")
            .file("g")
            .dir("g")
            .bytes(),
            "extract",
            _exists_inside("d"),
        ),
        HostileTar(
            "root-as-file",
            TarBuilder().file("./", b"x").bytes(),
            "reject",
        ),
        HostileTar("truncated", TarBuilder().file("f", b"x" * 5000).bytes()[:1500], "reject"),
        HostileTar("path-10000-chars", TarBuilder().file(long_path).bytes(), "reject"),
        HostileTar("symlink-10000-chars", TarBuilder().symlink("l", long_path).bytes(), "reject"),
        HostileTar(
            "sparse-10gib",
            TarBuilder().sparse("big", 10 << 30, [(0, b"a"), ((10 << 30) - 1, b"z")]).bytes(),
            "extract",
            _small_on_disk("big", 10 << 30),
        ),
        HostileTar(
            "sparse-map-overlap",
            TarBuilder().sparse("big", 1 << 30, [(0, b"a" * 10), (5, b"b")], "pax0.1").bytes(),
            "reject",
        ),
        HostileTar(
            "sparse-past-the-end",
            TarBuilder().sparse("big", 100, [(99, b"ab")], "gnu").bytes(),
            "reject",
        ),
        HostileTar("garbage-gzip", b"\x1f\x8b\x08\x00garbage" * 10, "reject"),
    ]
    return cases


def corpus_names() -> list[str]:
    """The case names, for test parametrisation."""
    return [case.name for case in corpus(Path("/nonexistent/outside"))]


def snapshot_outside(root: Path, dest: Path) -> dict[str, tuple[object, ...]]:
    """Type, mode, owner, size, mtime, ctime and content hash of everything under
    ``root`` except the ``dest`` subtree, plus ``/etc/passwd``.

    ctime moves on any metadata change, so chmod, chown or xattr writes through an
    escape show up as well as new, changed or removed entries.
    """
    found: dict[str, tuple[object, ...]] = {}
    paths = [root / "etc-passwd-probe"]
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != dest]
        paths.append(here)
        paths.extend(here / name for name in filenames + dirnames)
    for path in paths:
        real = Path("/etc/passwd") if path.name == "etc-passwd-probe" else path
        try:
            st = real.lstat()
        except FileNotFoundError:
            continue
        digest = ""
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(real.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            digest = os.readlink(real)
        found[str(path)] = (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            digest,
        )
    return found


def outside_inodes(root: Path, dest: Path) -> set[tuple[int, int]]:
    """(device, inode) of every non-directory outside ``dest``, and of /etc/passwd."""
    inodes = {(st.st_dev, st.st_ino) for st in [Path("/etc/passwd").stat()]}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != dest]
        for name in filenames:
            st = (here / name).lstat()
            inodes.add((st.st_dev, st.st_ino))
    return inodes


def linked_out(dest: Path, outside: set[tuple[int, int]]) -> list[str]:
    """Entries in ``dest`` that are hardlinks of an inode outside it."""
    found = []
    for dirpath, _, filenames in os.walk(dest):
        for name in filenames:
            st = (Path(dirpath) / name).lstat()
            if (st.st_dev, st.st_ino) in outside:
                found.append(str(Path(dirpath) / name))
    return found


def make_arena(base: Path) -> tuple[Path, Path]:
    """``base/outside`` (with a secret) and an empty ``base/dest`` beside it."""
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    (outside / "subdir").mkdir()
    (outside / "subdir" / "file").write_bytes(b"also outside\n")
    dest = base / "dest"
    dest.mkdir()
    return outside, dest
