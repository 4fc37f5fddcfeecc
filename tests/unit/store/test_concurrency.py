"""Several processes on one store, and a writer killed with SIGKILL mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from envkit.store.store import Store

ROOT = Path(__file__).resolve().parents[3]

WRITER = """
import sys
from pathlib import Path
from envkit.store.store import Store
from tests.unit.store_helpers import make_image

store = Store(Path(sys.argv[1]))
worker = sys.argv[2]
for i in range(int(sys.argv[3])):
    # One import runs under one shared lock, so a concurrent prune cannot collect its
    # blobs between put_manifest and tag.
    with store.shared():
        desc = make_image(store, f"w{worker}:{i}", files={"shared.txt": b"same in all"})
        store.tag(f"all:{worker}-{i}", desc)
"""

PRUNER = """
import sys
from pathlib import Path
from envkit.store.store import Store

store = Store(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    store.prune()
"""

INGEST = """
import sys
from pathlib import Path
from envkit.store.store import Store

Store(Path(sys.argv[1])).ingest(sys.stdin.buffer)
"""


def _spawn(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdin=stdin)


def test_concurrent_writers_taggers_and_pruner(tmp_path: Path) -> None:
    root = tmp_path / "store"
    workers, per_worker = 4, 8
    procs = [_spawn(WRITER, str(root), str(w), str(per_worker)) for w in range(workers)]
    procs.append(_spawn(PRUNER, str(root), "15"))
    assert [p.wait(timeout=300) for p in procs] == [0] * len(procs)
    store = Store(root)
    report = store.fsck()
    assert report.ok, report
    refs = store.refs()
    for w in range(workers):
        for i in range(per_worker):
            assert f"docker.io/library/w{w}:{i}" in refs
            assert refs[f"docker.io/library/all:{w}-{i}"] == refs[f"docker.io/library/w{w}:{i}"]
    assert len(refs) == 2 * workers * per_worker
    assert store.prune().removed_blobs == []


def test_threads_share_one_store(tmp_path: Path) -> None:
    from tests.unit.store_helpers import make_image

    store = Store(tmp_path / "store")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                with store.shared():
                    make_image(store, f"t{n}:{i}")
                if i == 2:
                    store.prune()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.refs()) == 20 and store.fsck().ok


def _wait_for_partial(tmp_dir: Path, proc: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the writer exited before it was killed"
        found = [p for p in tmp_dir.glob("tmp-ingest-*") if p.stat().st_size > 0]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("the writer never started its temp file")


def test_kill_9_mid_ingest_leaves_only_tmp_leftover(tmp_path: Path) -> None:
    root = tmp_path / "store"
    proc = _spawn(INGEST, str(root), stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(2 << 20))  # more than one chunk, then the pipe stays open
    proc.stdin.flush()
    store = Store(root)
    partial = _wait_for_partial(root / "tmp", proc)
    assert store.fsck().ok  # a live write is not a leftover
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdin.close()
    assert list(store.blobs()) == []
    report = store.fsck()
    assert report.partial_files == [f"tmp/{partial.name}"]
    assert not report.healthy
    repaired = store.fsck(repair=True)
    assert repaired.healthy
    assert not partial.exists()
    assert store.fsck().ok


def test_cli_fsck_after_kill_exit_codes(tmp_path: Path, envkit_home: Path) -> None:
    from envkit.cli import main

    root = envkit_home / "store"
    proc = _spawn(INGEST, str(root), stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(os.urandom(2 << 20))
    proc.stdin.flush()
    _wait_for_partial(root / "tmp", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdin.close()
    assert main(["fsck"]) == 1
    assert main(["fsck", "--repair"]) == 0
    assert main(["fsck"]) == 0
