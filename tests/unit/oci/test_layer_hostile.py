"""Hostile layer tars: every one extracts or is refused, and nothing outside the root changes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envkit.errors import EnvkitError, LayerError
from envkit.oci.layer_reader import extract_layer
from tests.unit.hostile_tars import (
    SECRET,
    TarBuilder,
    corpus,
    corpus_names,
    linked_out,
    make_arena,
    outside_inodes,
    snapshot_outside,
)


def _extract_checked(
    base: Path, outside: Path, dest: Path, data: bytes, *, unprivileged: bool | None = None
) -> LayerError | None:
    """Extract ``data``; assert zero escapes; return the LayerError when refused."""
    before = snapshot_outside(base, dest)
    inodes = outside_inodes(base, dest)
    error: LayerError | None = None
    try:
        extract_layer(io.BytesIO(data), dest, unprivileged=unprivileged)
    except LayerError as exc:
        error = exc
    assert snapshot_outside(base, dest) == before
    assert linked_out(dest, inodes) == []
    assert (outside / "secret").read_bytes() == SECRET
    return error


@pytest.mark.parametrize("name", corpus_names())
@pytest.mark.parametrize("unprivileged", [None, True], ids=["default", "unprivileged"])
def test_hostile_tar_never_escapes(tmp_path: Path, name: str, unprivileged: bool | None) -> None:
    outside, dest = make_arena(tmp_path)
    case = next(c for c in corpus(outside) if c.name == name)
    if case.lower is not None:
        case.lower(dest, outside)
    error = _extract_checked(tmp_path, outside, dest, case.data, unprivileged=unprivileged)
    if case.expect == "reject":
        assert error is not None, f"{name} was extracted, expected a LayerError"
        assert error.hint, "a LayerError should say how to fix it"
    else:
        assert error is None, f"{name} was refused: {error}"
        if case.check is not None:
            case.check(dest)


def _special_files(root: Path) -> list[str]:
    """Every character or block device below ``root``."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(found)


DEVICES = (
    TarBuilder()
    .device("dev/mem", 1, 1)
    .device("dev/sda", 8, 0, block=True)
    .device("dev/null", 1, 3)
    .device("etc/wh", 0, 0)
    .fifo("dev/fifo")
    .bytes()
)


# As root this is the case that matters: the extraction could mknod them.
@pytest.mark.parametrize("unprivileged", [None, False, True], ids=["default", "priv", "unpriv"])
def test_device_nodes_are_never_created(tmp_path: Path, unprivileged: bool | None) -> None:
    _, dest = make_arena(tmp_path)
    report = extract_layer(io.BytesIO(DEVICES), dest, unprivileged=unprivileged)
    assert _special_files(dest) == []
    for name in ("dev/mem", "dev/sda", "dev/null", "etc/wh"):
        assert not os.path.lexists(dest / name), name
    assert sorted(report.skipped) == [
        "/dev/mem: device node, not created",
        "/dev/null: device node, not created",
        "/dev/sda: device node, not created",
        "/etc/wh: device node, not created",
    ]
    assert stat.S_ISFIFO((dest / "dev" / "fifo").lstat().st_mode), "fifos are kept"


@pytest.mark.parametrize("unprivileged", [None, True], ids=["default", "unpriv"])
def test_a_device_entry_replaces_lower_content_with_nothing(
    tmp_path: Path, unprivileged: bool | None
) -> None:
    """As moby's pkg/archive does in a user namespace: what was at the path goes."""
    _, dest = make_arena(tmp_path)
    (dest / "dev").mkdir()
    (dest / "dev" / "mem").write_bytes(b"lower file\n")
    (dest / "dev" / "sda").mkdir()
    (dest / "dev" / "sda" / "x").write_bytes(b"lower tree\n")
    data = TarBuilder().device("dev/mem", 1, 1).device("dev/sda", 8, 0, block=True).bytes()
    extract_layer(io.BytesIO(data), dest, unprivileged=unprivileged)
    assert sorted(os.listdir(dest / "dev")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could create a device node")
def test_snapshots_of_a_layer_with_devices_hold_no_device_node(envkit_home: Path) -> None:
    from envkit.oci.digest import sha256_bytes
    from envkit.store import snapshots
    from envkit.store.store import Store

    store = Store.default()
    desc = store.write_blob(DEVICES)
    snap = snapshots.prepare(store, [desc.digest], [sha256_bytes(DEVICES)])
    root = Path(snap.layers[0])
    assert _special_files(root) == []
    assert stat.S_ISFIFO((root / "dev" / "fifo").lstat().st_mode)


def test_absolute_names_land_inside_the_root(tmp_path: Path) -> None:
    outside, dest = make_arena(tmp_path)
    data = TarBuilder().file(f"{outside}/secret", b"inside\n").bytes()
    _extract_checked(tmp_path, outside, dest, data)
    assert (dest / str(outside).lstrip("/") / "secret").read_bytes() == b"inside\n"


def test_file_over_lower_hardlink_to_outside_does_not_write_through(tmp_path: Path) -> None:
    # A lower layer (trusted or not) left a hardlink to a file outside; the new layer's
    # file replaces the name, it must not write into the shared inode.
    outside, dest = make_arena(tmp_path)
    os.link(outside / "secret", dest / "shared")
    before = (outside / "secret").stat()
    data = TarBuilder().file("shared", b"new content\n", mode=0o600).bytes()
    extract_layer(io.BytesIO(data), dest)
    after = (outside / "secret").stat()
    assert (outside / "secret").read_bytes() == SECRET
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    assert (dest / "shared").read_bytes() == b"new content\n"
    assert not os.path.samefile(dest / "shared", outside / "secret")


def test_symlink_entries_are_stored_not_followed(tmp_path: Path) -> None:
    outside, dest = make_arena(tmp_path)
    data = TarBuilder().symlink("etc/out", str(outside)).symlink("up", "../../..").bytes()
    _extract_checked(tmp_path, outside, dest, data)
    assert os.readlink(dest / "etc" / "out") == str(outside)
    assert os.readlink(dest / "up") == "../../.."


def test_corrupt_zstd_is_a_layer_error(tmp_path: Path) -> None:
    _, dest = make_arena(tmp_path)
    with pytest.raises(LayerError, match="corrupt"):
        extract_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\x00" * 64), dest)


# -- property: random tars from a small hostile alphabet never escape ---------------------

OUT = "{OUT}"  # replaced by the absolute path of the outside directory
_COMPONENTS = ["a", "b", "..", ".", "", "lowerlink", ".wh.a", ".wh..wh..opq", ".wh...", OUT]
_TARGETS = [OUT, f"{OUT}/secret", f"{OUT}/subdir", "/", "/etc/passwd", "..", "../..",
            "../outside", "../outside/secret", "a", "a/b", "b", "lowerlink", "lowerlink/secret",
            ".", ""]  # fmt: skip

_names = st.lists(st.sampled_from(_COMPONENTS), min_size=1, max_size=4).map("/".join)
_entries = st.lists(
    st.tuples(
        st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo", "device"]),
        _names,
        st.sampled_from(_TARGETS),
    ),
    min_size=1,
    max_size=8,
)


def _build(entries: list[tuple[str, str, str]], outside: Path) -> bytes:
    builder = TarBuilder()
    for kind, name, target in entries:
        name = name.replace(OUT, str(outside))
        target = target.replace(OUT, str(outside))
        if kind == "file":
            builder.file(name)
        elif kind == "dir":
            builder.dir(name)
        elif kind == "symlink":
            builder.symlink(name, target)
        elif kind == "hardlink":
            builder.hardlink(name, target)
        elif kind == "fifo":
            builder.fifo(name)
        else:
            builder.device(name, 1, 3)
    return builder.bytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=_entries, unprivileged=st.sampled_from([None, True]))
def test_random_tars_never_escape(
    entries: list[tuple[str, str, str]], unprivileged: bool | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="envkit-hostile-") as tmp:
        base = Path(tmp)
        outside, dest = make_arena(base)
        (dest / "lowerlink").symlink_to(outside)
        (dest / "a").mkdir()
        (dest / "a" / "lower-file").write_bytes(b"lower\n")
        try:
            data = _build(entries, outside)
        except (ValueError, tarfile.TarError):
            return  # tarfile itself refuses to write this entry
        _extract_checked(base, outside, dest, data, unprivileged=unprivileged)


# -- repeated layers: overlayfs refuses a lower dir given twice (ELOOP) -------------------


def test_repeated_layers_are_stacked_once_topmost_kept(tmp_path: Path) -> None:
    from envkit.runtime.rootfs import distinct_layers

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (tmp_path / "link-to-a").symlink_to(a)
    # As the monitor passes them: /proc/self/fd links, one descriptor per list entry.
    fds = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in (a, b, a, tmp_path / "link-to-a", b)]
    try:
        links = [f"/proc/self/fd/{fd}" for fd in fds]
        assert distinct_layers(links) == [links[0], links[1]]
        assert distinct_layers([str(b), str(a), str(b)]) == [str(b), str(a)]
        assert distinct_layers([str(a)]) == [str(a)]
    finally:
        for fd in fds:
            os.close(fd)


# -- sparse files: holes stay holes, and a layer may expand only so far -------------------

GIB = 1 << 30
SPARSE_FORMATS = ["pax1.0", "pax0.1", "pax0.0", "gnu"]
#: 10 GiB apparent, 8 KiB of data: at the start, in the middle, at the very end.
SPARSE_SEGMENTS = [(0, b"A" * 4096), (5 * GIB + 100, b"B" * 100), (10 * GIB - 4096, b"C" * 4096)]


def _sparse_layer(fmt: str, segments: list[tuple[int, bytes]] = SPARSE_SEGMENTS) -> bytes:
    return (
        TarBuilder()
        .file("before", b"before\n")
        .sparse("big", 10 * GIB, segments, fmt)
        .file("after", b"after\n")
        .bytes()
    )


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
@pytest.mark.parametrize("unprivileged", [None, True], ids=["default", "unpriv"])
def test_a_sparse_entry_stays_sparse(tmp_path: Path, fmt: str, unprivileged: bool | None) -> None:
    outside, dest = make_arena(tmp_path)
    data = _sparse_layer(fmt)
    assert len(data) < 32 * 1024
    assert _extract_checked(tmp_path, outside, dest, data, unprivileged=unprivileged) is None
    st = (dest / "big").stat()
    assert st.st_size == 10 * GIB
    assert st.st_blocks * 512 < 1 << 20, f"{st.st_blocks * 512} bytes allocated"
    assert stat.S_IMODE(st.st_mode) == 0o644
    with open(dest / "big", "rb") as f:
        for offset, chunk in SPARSE_SEGMENTS:
            assert os.pread(f.fileno(), len(chunk), offset) == chunk
        for hole in (4096, 5 * GIB, 5 * GIB + 200, 10 * GIB - 8192):
            assert os.pread(f.fileno(), 100, hole) == b"\0" * 100
    # The entries around it were read at the right places of the stream.
    assert (dest / "before").read_bytes() == b"before\n"
    assert (dest / "after").read_bytes() == b"after\n"


def test_a_sparse_entry_ending_in_a_hole_has_its_full_size(tmp_path: Path) -> None:
    _, dest = make_arena(tmp_path)
    # GNU tar ends the map of a file ending in a hole with (size, 0).
    data = TarBuilder().sparse("f", 3 * GIB, [(GIB, b"x" * 10), (3 * GIB, b"")]).bytes()
    extract_layer(io.BytesIO(data), dest)
    st = (dest / "f").stat()
    assert (st.st_size, st.st_blocks * 512 < 1 << 20) == (3 * GIB, True)
    with open(dest / "f", "rb") as f:
        assert os.pread(f.fileno(), 12, GIB - 1) == b"\0" + b"x" * 10 + b"\0"


@pytest.mark.parametrize(
    "segments",
    [
        [(100, b"a" * 10), (105, b"b" * 10)],  # overlapping
        [(200, b"a"), (100, b"b")],  # out of order
        [(10 * GIB, b"past the end")],
        [(-1, b"a")],
    ],
    ids=["overlap", "unordered", "past-end", "negative"],
)
def test_a_bad_sparse_map_is_refused(tmp_path: Path, segments: list[tuple[int, bytes]]) -> None:
    outside, dest = make_arena(tmp_path)
    data = TarBuilder().sparse("big", 10 * GIB, segments, "pax0.1").bytes()
    error = _extract_checked(tmp_path, outside, dest, data)
    assert error is not None and "sparse map" in error.message, error
    assert error.hint


def test_a_sparse_map_claiming_more_data_than_stored_is_refused(tmp_path: Path) -> None:
    outside, dest = make_arena(tmp_path)
    # The map says 1 MiB of data; the entry holds 10 bytes, then the next header.
    info = tarfile.TarInfo("GNUSparseFile.0/big")
    info.pax_headers = {"GNU.sparse.map": f"0,{1 << 20}", "GNU.sparse.size": str(GIB)}
    info.size = 10
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"0123456789"))
        tar.addfile(tarfile.TarInfo("next"), io.BytesIO(b""))
    error = _extract_checked(tmp_path, outside, dest, buf.getvalue())
    assert error is not None and "sparse map" in error.message, error


def test_the_cap_refuses_a_layer_expanding_past_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside, dest = make_arena(tmp_path)
    monkeypatch.setenv("ENVKIT_MAX_LAYER_SIZE", "1g")
    error = _extract_checked(tmp_path, outside, dest, _sparse_layer("pax1.0"))
    assert error is not None
    assert "expands to more than 1 GiB" in error.message
    assert "ENVKIT_MAX_LAYER_SIZE" in error.message + (error.hint or "")
    assert not (dest / "big").exists()  # refused before anything was written
    # Many files of real content count together.
    monkeypatch.setenv("ENVKIT_MAX_LAYER_SIZE", "1m")
    dest2 = tmp_path / "many"
    many = TarBuilder()
    for n in range(5):
        many.file(f"f{n}", b"x" * 300_000)
    with pytest.raises(LayerError, match="expands to more than 1 MiB"):
        extract_layer(io.BytesIO(many.bytes()), dest2)
    assert len(list(dest2.iterdir())) <= 4  # stopped at the file that crossed it


def test_the_cap_bounds_a_decompression_bomb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What follows the tar's end is read (to hash the diff_id), so it counts too."""
    import gzip

    monkeypatch.setenv("ENVKIT_MAX_LAYER_SIZE", "1m")
    _, dest = make_arena(tmp_path)
    bomb = gzip.compress(TarBuilder().file("a", b"a").bytes() + b"\0" * (8 << 20))
    assert len(bomb) < 64 * 1024
    with pytest.raises(LayerError, match="expands to more than 1 MiB"):
        extract_layer(io.BytesIO(bomb), dest)


def test_the_default_cap_and_a_bad_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from envkit.oci.layer_reader import max_layer_size

    monkeypatch.delenv("ENVKIT_MAX_LAYER_SIZE", raising=False)
    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path / "home"))
    assert max_layer_size() == 64 * GIB
    for text, value in [("512m", 512 << 20), ("2GiB", 2 * GIB), ("1T", 1 << 40), ("4096", 4096)]:
        monkeypatch.setenv("ENVKIT_MAX_LAYER_SIZE", text)
        assert max_layer_size() == value
    monkeypatch.setenv("ENVKIT_MAX_LAYER_SIZE", "lots")
    with pytest.raises(EnvkitError, match="ENVKIT_MAX_LAYER_SIZE") as info:
        extract_layer(io.BytesIO(TarBuilder().file("a").bytes()), tmp_path / "d")
    assert info.value.exit_code == 2 and info.value.hint


# -- 10,000-character paths, truncated and corrupt blobs ----------------------------------

LONG_PATH = "/".join(["d" * 99] * 100)  # 9,999 characters, every component legal


@pytest.mark.parametrize("kind", ["file", "dir", "symlink-target", "hardlink-target"])
def test_a_10000_character_path_is_refused(tmp_path: Path, kind: str) -> None:
    outside, dest = make_arena(tmp_path)
    builder = TarBuilder()
    if kind == "file":
        builder.file(LONG_PATH + "/x")
    elif kind == "dir":
        builder.dir(LONG_PATH)
    elif kind == "symlink-target":
        builder.symlink("link", LONG_PATH)
    else:
        builder.file("f").hardlink("link", LONG_PATH)
    error = _extract_checked(tmp_path, outside, dest, builder.bytes())
    assert error is not None
    assert "longer than 4096 bytes" in error.message, error.message
    assert len(error.message) < 400  # the path is shortened, not printed whole
    assert error.hint


def _blob(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    """``data`` stored as the store stores blobs: ``blobs/sha256/<hex>``."""
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path, f"sha256:{digest}"


def _layer_tar() -> bytes:
    return TarBuilder().file("a", os.urandom(20_000)).file("b", b"b" * 50_000).bytes()


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize(
    ("name", "data", "expect"),
    [
        ("truncated-tar", _layer_tar()[:15_000], "truncated"),
        ("truncated-gzip", gzip.compress(_layer_tar())[:15_000], "truncated"),
        ("truncated-zstd", _zstd(_layer_tar())[:15_000], "truncated"),
        ("truncated-zstd-late", _zstd(_layer_tar() * 3)[:-5_000], "truncated"),
        ("corrupt-gzip", b"\x1f\x8b\x08\x00garbage" * 10, "corrupt"),
        ("corrupt-zstd", b"\x28\xb5\x2f\xfd" + b"\x00" * 64, "corrupt"),
        ("not-a-tar", b"hello, this is not a tar" * 100, "corrupt"),
    ],
)
def test_truncated_and_corrupt_blobs_name_the_layer(
    tmp_path: Path, name: str, data: bytes, expect: str
) -> None:
    path, digest = _blob(tmp_path, data)
    with open(path, "rb") as stream, pytest.raises(LayerError) as info:
        extract_layer(stream, tmp_path / "dest")
    message = info.value.message
    assert message.startswith(f"layer {digest}: "), message
    assert expect in message, message
    assert info.value.hint and info.value.exit_code == 2
    # A stream without a name: the caller's label, else the destination.
    with pytest.raises(LayerError, match=f"^layer {digest[:19]}"):
        extract_layer(io.BytesIO(data), tmp_path / "dest2", layer=digest[:19])
    with pytest.raises(LayerError, match=f"^{tmp_path / 'dest3'}: "):
        extract_layer(io.BytesIO(data), tmp_path / "dest3")
