"""Hostile layer tars: every one extracts or is refused, and nothing outside the root changes."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envkit.errors import LayerError
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
    from envkit.store.layout import Store

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
    with pytest.raises(LayerError, match="not a valid tar"):
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
