"""prune and fsck --repair: what killed builds and runs leave, unused snapshots, images
``rmi -f`` left for containers that are gone, and build context snapshots no index
refers to (issue 16); ``rm`` takes a container's port log; ``system df``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from envkit.build import sweep
from envkit.build.cache import StepCache
from envkit.build.context import hash_file, hash_selection
from envkit.build.image_state import ImageState
from envkit.cli import main
from envkit.errors import StoreError
from envkit.runtime import state as st
from envkit.store import resolved, snapshots
from envkit.store.locks import lock_for
from envkit.store.store import Store
from tests.unit.store_helpers import make_image


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store.default()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def killed_build(home: Path) -> Path:
    """A build dir as a build killed mid-RUN leaves it: upper with files, work/work 0."""
    path = home / "build" / f"{dead_pid()}-12345-{os.urandom(8).hex()}"
    (path / "upper" / "usr").mkdir(parents=True)
    (path / "upper" / "usr" / "big").write_bytes(b"x" * 50_000)
    (path / "work" / "work").mkdir(parents=True)
    os.chmod(path / "work" / "work", 0)
    return path


def layer_snapshots(store: Store, desc_digest: str) -> list[Path]:
    _, manifest = store.image_manifest(desc_digest)
    config = store.config(manifest)
    snap = snapshots.prepare(store, [d.digest for d in manifest.layers], config.diff_ids)
    return [Path(p) for p in snap.layers]


def test_prune_removes_killed_build_leftovers_and_fsck_is_clean(
    store: Store, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = killed_build(envkit_home)
    legacy = envkit_home / "build" / os.urandom(16).hex()  # named by an older envkit
    (legacy / "upper").mkdir(parents=True)
    live = envkit_home / "build" / sweep.build_dir_name()  # this process: a running build
    (live / "upper").mkdir(parents=True)
    logs = envkit_home / "network" / "logs"
    logs.mkdir(parents=True)
    (logs / "ports-gone.log").write_text("forwarder of a container that is gone\n")
    (logs / "holder.log").write_text("not a port log\n")

    assert main(["fsck"]) == 1
    out = capsys.readouterr().out
    assert str(dead) in out and str(logs / "ports-gone.log") in out
    assert str(live) not in out

    assert main(["prune"]) == 0
    out = capsys.readouterr().out
    assert f"Deleted leftover: {dead}" in out
    assert not dead.exists() and not legacy.exists() and live.is_dir()
    assert not (logs / "ports-gone.log").exists() and (logs / "holder.log").exists()
    assert main(["fsck"]) == 0


def test_fsck_repair_removes_build_leftovers(store: Store, envkit_home: Path) -> None:
    dead = killed_build(envkit_home)
    assert main(["fsck", "--repair"]) == 0
    assert not dead.exists()
    assert main(["fsck"]) == 0


def test_a_rerun_removes_what_a_killed_build_left(store: Store, envkit_home: Path) -> None:
    """The next build's sweep: dead owners only, under the shared lock."""
    dead = killed_build(envkit_home)
    legacy = envkit_home / "build" / os.urandom(16).hex()
    legacy.mkdir(parents=True)
    live = envkit_home / "build" / sweep.build_dir_name()
    live.mkdir(parents=True)
    with store.shared():
        tmp = store.tmp_dir / f"tmp-layer-{dead_pid()}-{os.urandom(8).hex()}"
        tmp.write_bytes(b"half a layer")
        mine = store.tmp_dir / f"tmp-layer-{os.getpid()}-{os.urandom(8).hex()}"
        mine.write_bytes(b"being written")
        removed = sweep.after_crash(store)
    assert sorted(removed) == sorted([str(dead), str(tmp)])
    assert legacy.exists() and live.exists() and mine.exists()


def test_build_cache_temp_files_of_killed_builds_are_removed(
    store: Store, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A build killed while writing a step entry or a context index leaves its temp
    file beside them: fsck reports it, and prune, fsck --repair and the next build's
    sweep remove it (not a live writer's)."""
    made = []
    for sub in ("steps", "context"):
        top = envkit_home / "cache" / sub
        top.mkdir(parents=True, exist_ok=True)
        dead = top / f"tmp-{os.urandom(32).hex()}_json-{dead_pid()}-{os.urandom(8).hex()}"
        dead.write_bytes(b'{"half":')
        made.append(dead)
    live = envkit_home / "cache" / "steps" / f"tmp-x_json-{os.getpid()}-{os.urandom(8).hex()}"
    live.write_bytes(b"being written")
    assert main(["fsck"]) == 1
    out = capsys.readouterr().out
    assert all(f"leftover {p} (of a killed build or run)" in out for p in made), out
    assert str(live) not in out
    with store.shared():
        assert sorted(sweep.after_crash(store)) == sorted(map(str, made))
    made[0].write_bytes(b"again")
    assert main(["prune"]) == 0
    assert f"Deleted leftover: {made[0]}" in capsys.readouterr().out
    made[1].write_bytes(b"again")
    assert main(["fsck", "--repair"]) == 0
    assert not any(p.exists() for p in made) and live.exists()
    assert main(["fsck"]) == 0


def _killed_before_rename(write: Callable[[], object]) -> None:
    """Run ``write`` in a child killed where it would rename its temp file into place."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.replace = lambda *_: os._exit(9)
        try:
            write()
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9


def test_temp_files_of_a_killed_login_and_run_are_removed(
    store: Store, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `login` killed while writing auth.json left a copy of the credentials beside
    it, and a run killed while remembering its image a run-cache entry, that nothing
    removed: fsck reports them, prune removes them."""
    from envkit.registry import credentials

    _killed_before_rename(lambda: credentials.save("r.test", credentials.Credentials("u", "pw")))
    entry = resolved.Resolved("sha256:" + "a" * 64, {}, [])
    _killed_before_rename(lambda: resolved.remember("img:1", entry, [], [0, 0]))
    left = sorted([*envkit_home.glob("tmp-*"), *(envkit_home / "run-cache").glob("tmp-*")])
    assert len(left) == 2, left
    assert main(["fsck"]) == 1
    out = capsys.readouterr().out
    assert all(f"leftover {p}" in out for p in left), out
    assert main(["prune"]) == 0
    assert not any(p.exists() for p in left)
    assert main(["fsck"]) == 0


def test_unused_runtime_dirs_are_removed(store: Store, tmp_path: Path) -> None:
    import tempfile

    leftover = Path(tempfile.mkdtemp(prefix=sweep.RUNTIME_DIR_PREFIX))
    busy = Path(tempfile.mkdtemp(prefix=sweep.RUNTIME_DIR_PREFIX))
    (busy / "file").write_text("not empty: never removed")
    try:
        with store.exclusive():
            report = sweep.collect(store)
        assert str(leftover) in report.runtime_dirs and not leftover.exists()
        assert busy.exists()
    finally:
        (busy / "file").unlink()
        busy.rmdir()
        if leftover.exists():
            leftover.rmdir()


def test_rmi_then_prune_removes_the_image_snapshots(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = make_image(store, "gone:1", files={"a": b"a" * 10_000}, layers=2)
    kept = make_image(store, "kept:1", files={"b": b"b"})
    gone_dirs = layer_snapshots(store, gone.digest)
    kept_dirs = layer_snapshots(store, kept.digest)
    assert (len(gone_dirs), len(kept_dirs)) == (2, 1)
    assert main(["rmi", "gone:1"]) == 0
    assert main(["prune"]) == 0
    out = capsys.readouterr().out
    for path in gone_dirs:
        assert f"Deleted snapshot: {path}" in out
        assert not path.exists()
        assert not Path(f"{path}.json").exists() and not Path(f"{path}.lock").exists()
    assert all(p.is_dir() and Path(f"{p}.json").exists() for p in kept_dirs)
    assert main(["fsck"]) == 0


def test_partial_extractions_are_removed(store: Store) -> None:
    kept = make_image(store, "kept:1")
    (dest,) = layer_snapshots(store, kept.digest)
    partial = dest.parent / f".{dest.name}.partial-abc"
    (partial / "etc").mkdir(parents=True)
    with store.exclusive():
        report = sweep.collect(store)
    assert report.partial_snapshots == [str(partial)]
    assert not partial.exists() and dest.is_dir()


def test_build_cache_entries_keep_their_snapshots(store: Store) -> None:
    desc = make_image(store, "base:1")
    dirs = layer_snapshots(store, desc.digest)
    _, manifest = store.image_manifest(desc)
    config = store.config(manifest)
    StepCache().put("sha256:" + "ab" * 32, ImageState(manifest.layers, config.raw))
    store.untag("base:1")
    with store.exclusive():
        report = sweep.collect(store)  # the entry's blobs went; prune_cache drops it later
    assert report.snapshots == [] and all(p.is_dir() for p in dirs)


def record_for(store: Store, desc_digest: str, *, running: bool) -> st.ContainerState:
    _, manifest = store.image_manifest(desc_digest)
    record = st.create(
        name=None, image="app:1", image_id=manifest.config.digest, argv=["sleep", "1"]
    )
    if running:
        record.mark_running(os.getpid())  # alive: pid and start time match
    return record


def test_a_container_keeps_its_snapshots_after_rmi(store: Store) -> None:
    """Found through the run-cache, which remembers the dirs of every image run."""
    desc = make_image(store, "app:1")
    stamp = resolved.index_stamp()
    assert stamp is not None
    _, manifest = store.image_manifest(desc)
    config = store.config(manifest)
    snap = snapshots.prepare(store, [d.digest for d in manifest.layers], config.diff_ids)
    found = resolved.Resolved(manifest.config.digest, dict(config.config), snap.layers)
    resolved.remember("app:1", found, snap.marks, stamp)
    record = record_for(store, desc.digest, running=False)
    assert main(["rmi", "app:1"]) == 2  # a container uses it: refused, as docker does
    assert main(["rmi", "-f", "app:1"]) == 0  # untagged; the image stays for the container
    assert main(["prune"]) == 0
    assert all(Path(p).is_dir() for p in snap.layers)
    st.remove(record)
    assert main(["prune"]) == 0
    assert not any(Path(p).exists() for p in snap.layers)
    assert not os.listdir(Path(os.environ["ENVKIT_HOME"]) / "run-cache")


def test_a_dangling_image_stays_while_a_container_uses_it(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """docker's ``image prune`` spares a dangling image a container uses; envkit's prune
    spares it as long as the container's record exists (running or not)."""
    desc = make_image(store, "app:1")
    dirs = layer_snapshots(store, desc.digest)
    record = record_for(store, desc.digest, running=True)
    assert main(["rmi", "-f", "app:1"]) == 0
    assert main(["prune"]) == 0
    assert store.resolve(desc.digest) == desc and all(p.is_dir() for p in dirs)
    record.mark_exited(0)
    assert main(["prune"]) == 0  # stopped, but the container still exists
    assert store.resolve(desc.digest) == desc and all(p.is_dir() for p in dirs)
    capsys.readouterr()
    st.remove(record)
    assert main(["prune"]) == 0
    assert f"Deleted dangling image: {desc.digest}" in capsys.readouterr().out
    assert store.entries() == [] and list(store.blobs()) == []
    assert not any(p.exists() for p in dirs)
    assert main(["fsck"]) == 0


def test_images_kept_without_a_name_are_not_dangling(store: Store) -> None:
    """Only what ``rmi -f`` left for a container goes: an image loaded or built without
    a name stays (docker would prune those too; envkit documents that it keeps them)."""
    desc = make_image(store, "app:1")
    store.untag("app:1")
    store.keep(desc)
    assert main(["prune"]) == 0
    assert store.resolve(desc.digest) == desc
    record = record_for(store, desc.digest, running=False)
    store.tag("app:1", desc)
    assert main(["rmi", "-f", "app:1"]) == 0  # dangling now, kept for the container
    store.keep(desc)  # loaded (or built) again without a name: kept for its own sake
    st.remove(record)
    assert main(["prune"]) == 0
    assert store.resolve(desc.digest) == desc


def test_a_running_container_of_an_unknown_image_keeps_every_snapshot(store: Store) -> None:
    desc = make_image(store, "app:1")
    dirs = layer_snapshots(store, desc.digest)
    record = record_for(store, desc.digest, running=True)
    assert main(["rmi", "app:1"]) == 2  # a container uses it: refused, as docker does
    assert main(["rmi", "-f", "app:1"]) == 0  # untagged, kept unnamed for the container
    # The image then leaves the store another way (the library's untag_image, another
    # OCI tool rewriting index.json, fsck --repair of a damaged image) and the run-cache
    # never saw it: what the container runs on is unknown.
    store.untag_image(desc.digest)
    with store.exclusive():
        report = sweep.collect(store)
    assert report.snapshots == [] and record.name in report.snapshots_kept
    assert all(p.is_dir() for p in dirs)
    record.mark_exited(0)
    st.remove(record)


def test_a_run_about_to_start_holds_off_collection(store: Store) -> None:
    """run holds the store lock shared from its look-up until its record exists."""
    make_image(store, "app:1")
    entered, release = threading.Event(), threading.Event()

    def starting_run() -> None:
        with resolved.holding():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=starting_run)
    thread.start()
    try:
        assert entered.wait(10)
        collector = lock_for(store.root / "lock")
        with pytest.raises(StoreError, match="timed out"), collector.exclusive(timeout=0.2):
            pass
    finally:
        release.set()
        thread.join()
    with lock_for(store.root / "lock").exclusive(timeout=5):
        pass


def test_rm_removes_the_port_log(envkit_home: Path) -> None:
    record = st.create(name="web", image="app:1", image_id="sha256:" + "0" * 64, argv=["x"])
    logs = envkit_home / "network" / "logs"
    logs.mkdir(parents=True)
    (logs / "ports-web.log").write_text("forwarder\n")
    (logs / "ports-other.log").write_text("forwarder\n")
    st.remove(record)
    assert not (logs / "ports-web.log").exists() and (logs / "ports-other.log").exists()


def test_system_df(store: Store, envkit_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    desc = make_image(store, "app:1", files={"data": os.urandom(20_000)})
    make_image(store, "idle:1")
    layer_snapshots(store, desc.digest)
    record = record_for(store, desc.digest, running=False)
    killed_build(envkit_home)
    assert main(["system", "df"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split("   ")[0].strip() for line in lines[1:]] == [
        "Images",
        "Containers",
        "Local Volumes",
        "Build Cache",
    ]
    assert main(["system", "df", "--format", "json"]) == 0
    rows = {r["Type"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    images = rows["Images"]
    assert (images["TotalCount"], images["Active"]) == (2, 1)
    assert 0 < images["ReclaimableBytes"] < images["SizeBytes"]
    assert rows["Containers"]["TotalCount"] == 1
    assert rows["Build Cache"]["SizeBytes"] >= 50_000
    assert rows["Build Cache"]["ReclaimableBytes"] == rows["Build Cache"]["SizeBytes"]
    st.remove(record)


# -- build context snapshots (cache/context/<ctx>.files) -------------------------------


def context_with_snapshot(tmp_path: Path) -> tuple[Path, Path]:
    """A context hashed twice, ``a`` changed between: the snapshot then holds a blob the
    index no longer refers to (kept a day by the build itself), and a stray blob as a
    build killed before writing its index leaves one."""
    context = tmp_path / "ctx"
    context.mkdir(parents=True)
    (context / "a").write_text("one\n")
    (context / "b").write_text("same\n")
    hash_selection(context)
    (context / "a").write_text("two, longer\n")
    selection = hash_selection(context)
    snapshot = Path(selection.snapshot)
    (snapshot / ("ab" * 32)).write_text("of a killed build\n")
    return context, snapshot


def blob_names(snapshot: Path) -> set[str]:
    return set(os.listdir(snapshot))


def test_prune_removes_context_snapshot_blobs_no_index_refers_to(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context, snapshot = context_with_snapshot(tmp_path)
    wanted = {hash_file(context / n).removeprefix("sha256:") for n in ("a", "b")}
    assert len(blob_names(snapshot)) == 4
    assert main(["fsck"]) == 0  # a cache, not damage
    capsys.readouterr()
    assert main(["prune"]) == 0
    assert "Deleted 2 unused build context snapshot files" in capsys.readouterr().out
    assert blob_names(snapshot) == wanted
    assert main(["prune"]) == 0  # nothing more
    assert "build context" not in capsys.readouterr().out
    assert hash_selection(context).hashed == 0  # the index still serves the next build


def test_prune_removes_the_snapshot_of_a_context_that_is_gone(
    store: Store, tmp_path: Path, envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context, snapshot = context_with_snapshot(tmp_path)
    kept, _ = context_with_snapshot(tmp_path / "other")
    index = snapshot.with_suffix(".json")
    orphan = snapshot.parent / ("cd" * 32 + ".files")  # its index was never written
    orphan.mkdir()
    (orphan / ("ef" * 32)).write_text("x")
    shutil.rmtree(context)
    assert main(["prune"]) == 0
    out = capsys.readouterr().out
    assert f"Deleted build context snapshot {snapshot}" in out
    assert f"Deleted build context index {index}" in out
    assert not snapshot.exists() and not index.exists() and not orphan.exists()
    left = os.listdir(envkit_home / "cache" / "context")
    assert sorted(n.rsplit(".", 1)[1] for n in left) == ["files", "json"]  # other's
    assert hash_selection(kept).hashed == 0


def test_fsck_repair_removes_unused_context_snapshots(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context, snapshot = context_with_snapshot(tmp_path)
    assert main(["fsck", "--repair"]) == 0
    out = capsys.readouterr().out
    assert "repaired: removed 2 unused build context snapshot files" in out
    assert len(blob_names(snapshot)) == 2
    shutil.rmtree(context)
    assert main(["fsck", "--repair"]) == 0
    assert not snapshot.exists() and not snapshot.with_suffix(".json").exists()
