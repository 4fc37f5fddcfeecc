"""envkit.registry.parallel.map_parallel: results in order, at most N at once, the first
failure (in item order) raised after the running calls finish."""

from __future__ import annotations

import threading

import pytest

from envkit.registry.parallel import map_parallel


def test_results_keep_the_items_order_and_concurrency_is_bounded() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if n < 3:
            barrier.wait(timeout=10)  # the first three run together
        with lock:
            running -= 1
        return n * n

    assert map_parallel(work, list(range(10)), 3) == [n * n for n in range(10)]
    assert peak == 3


def test_the_first_failure_in_item_order_is_raised_and_no_new_call_starts() -> None:
    started: list[int] = []
    both = threading.Barrier(2)
    one_failing = threading.Event()

    def work(n: int) -> int:
        started.append(n)
        both.wait(timeout=10)  # items 0 and 1 run together
        if n == 1:
            one_failing.set()
            raise ValueError("one")
        one_failing.wait(timeout=10)
        raise KeyError("zero")

    with pytest.raises(KeyError):
        map_parallel(work, list(range(50)), 2)
    assert sorted(started) == [0, 1]


def test_one_worker_or_one_item_runs_in_the_callers_thread() -> None:
    threads: set[int] = set()

    def work(n: int) -> int:
        threads.add(threading.get_ident())
        return n

    assert map_parallel(work, [1, 2, 3], 1) == [1, 2, 3]
    assert map_parallel(work, [4], 3) == [4]
    assert map_parallel(work, [], 3) == []
    assert threads == {threading.get_ident()}
