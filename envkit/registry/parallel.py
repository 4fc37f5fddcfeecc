"""Blob transfers a few at a time, on plain threads.

:mod:`concurrent.futures` would do, but its import (with :mod:`logging`) costs ~6 ms, a
noticeable part of a cold pull of a small image, for a pool that lives for one call.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    T = TypeVar("T")
    R = TypeVar("R")


def map_parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``[fn(item) for item in items]``, at most ``workers`` calls at a time.

    When calls fail, no new call is started, the running ones finish, and the exception
    of the first failed item (in ``items`` order) is raised.
    """
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    results: dict[int, R] = {}
    errors: dict[int, BaseException] = {}
    pending = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = None if errors else next(pending, None)
            if index is None:
                return
            try:
                results[index] = fn(items[index])
            except BaseException as exc:  # re-raised in the caller's thread
                with lock:
                    errors[index] = exc

    threads = [threading.Thread(target=work) for _ in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[min(errors)]
    return [results[index] for index in range(len(items))]
