"""The store's readers-writer file lock, and the small formatting helpers."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest

from envkit.errors import StoreError
from envkit.store.locks import FileLock, lock_for
from envkit.store.timestamps import human_size, parse_created, since

HOLD_EXCLUSIVE = """
import sys, time
from pathlib import Path
from envkit.store.locks import lock_for
with lock_for(Path(sys.argv[1])).exclusive():
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_one_lock_per_path_per_process(tmp_path: Path) -> None:
    assert lock_for(tmp_path / "lock") is lock_for(tmp_path / "x" / ".." / "lock")


def _from_another_thread(lock: FileLock, mode: Literal["shared", "exclusive"]) -> str:
    """Try to take ``lock`` in ``mode`` from a second thread, briefly: "took" or the error."""
    outcome: list[str] = []

    def attempt() -> None:
        hold = lock.shared if mode == "shared" else lock.exclusive
        try:
            with hold(timeout=0.05):
                outcome.append("took")
        except StoreError as e:
            outcome.append(str(e))

    t = threading.Thread(target=attempt)
    t.start()
    t.join(10)
    assert outcome, "the second thread hung"
    return outcome[0]


def test_reentrant_and_shared_inside_exclusive(tmp_path: Path) -> None:
    # Short timeouts everywhere: a lock that were not reentrant times out instead of hanging.
    lock = lock_for(tmp_path / "lock")
    with lock.exclusive(timeout=0.05):
        with lock.shared(timeout=0.05), lock.exclusive(timeout=0.05):
            assert "timed out" in _from_another_thread(lock, "shared")
        # The inner holds are gone; the outer exclusive one still keeps others out.
        assert "timed out" in _from_another_thread(lock, "shared")
    assert _from_another_thread(lock, "exclusive") == "took"
    with lock.shared(timeout=0.05), lock.shared(timeout=0.05):
        assert _from_another_thread(lock, "shared") == "took"
        assert "timed out" in _from_another_thread(lock, "exclusive")
    assert _from_another_thread(lock, "exclusive") == "took"


def test_no_upgrade_from_shared(tmp_path: Path) -> None:
    lock = lock_for(tmp_path / "lock")
    with lock.shared(), pytest.raises(StoreError, match="exclusive"), lock.exclusive():
        pass


def test_exclusive_waits_for_other_thread(tmp_path: Path) -> None:
    lock = lock_for(tmp_path / "lock")
    order: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    def reader() -> None:
        with lock.shared():
            entered.set()
            release.wait()
            order.append("reader done")

    t = threading.Thread(target=reader)
    t.start()
    entered.wait()
    with pytest.raises(StoreError, match="timed out"), lock.exclusive(timeout=0.05):
        pass
    release.set()
    with lock.exclusive():
        order.append("writer")
    t.join()
    assert order == ["reader done", "writer"]


def test_other_process_blocks_until_timeout(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_EXCLUSIVE, str(path)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=str(path)), lock_for(path).shared(timeout=0.1):
            pass
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    with lock_for(path).exclusive(timeout=30):
        pass


def test_created_parsing_and_since() -> None:
    assert parse_created("2024-06-01T10:00:00.123456789Z") == datetime(
        2024, 6, 1, 10, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_created("") is None and parse_created("yesterday") is None
    now = datetime(2024, 6, 3, 10, 0, 0, tzinfo=UTC)
    assert since("2024-06-01T10:00:00Z", now) == "2 days ago"
    assert since("2024-06-03T09:00:00Z", now) == "An hour ago"
    assert since("", now) == "N/A"


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (4_260_000, "4.26MB"), (999_960, "1MB")],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text
