"""Readers-writer locks on a file with ``flock(2)``, safe across processes and threads.

``flock`` alone excludes processes but not the threads of one process (they share the
lock through the process's open file), and a second ``open`` of the same file in one
process can deadlock against the first. So each lock file has one :class:`FileLock` per
process: threads coordinate on a condition variable and the process holds a single
``flock`` for all of them. Locks are reentrant per thread; a thread holding the lock
exclusive may also take it shared.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envkit.errors import StoreError

#: Seconds to wait for a lock held by another process before giving up.
DEFAULT_TIMEOUT = 600.0

_SHARED = "shared"
_EXCLUSIVE = "exclusive"


class FileLock:
    """A readers-writer lock backed by ``flock`` on ``path``; get one with :func:`lock_for`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._held: dict[int, list[str]] = {}  # thread id -> stack of modes it holds
        self._writer: int | None = None
        self._fd: int | None = None

    @contextmanager
    def shared(self, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
        """Hold the lock shared: other shared holders may run, exclusive ones wait."""
        self._acquire(_SHARED, timeout)
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def exclusive(self, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
        """Hold the lock exclusive: nobody else, in any process, holds it meanwhile."""
        self._acquire(_EXCLUSIVE, timeout)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, mode: str, timeout: float) -> None:
        me = threading.get_ident()
        with self._cond:
            stack = self._held.get(me)
            if stack:
                if mode == _EXCLUSIVE and self._writer != me:
                    raise StoreError(
                        f"{self.path}: cannot take the lock exclusive while this thread "
                        "holds it shared",
                        hint="release the shared lock first (an envkit bug if you see this)",
                    )
                stack.append(mode)
                return
            deadline = time.monotonic() + timeout
            if mode == _SHARED:
                while self._writer is not None:
                    self._wait(deadline)
            else:
                while self._writer is not None or self._held:
                    self._wait(deadline)
            if self._fd is None:
                self._fd = self._flock(mode, deadline)
            self._held[me] = [mode]
            if mode == _EXCLUSIVE:
                self._writer = me

    def _release(self) -> None:
        me = threading.get_ident()
        with self._cond:
            stack = self._held[me]
            stack.pop()
            if stack:
                return
            del self._held[me]
            if self._writer == me:
                self._writer = None
            if not self._held and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
            self._cond.notify_all()

    def _wait(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._cond.wait(remaining):
            raise self._timeout_error()

    def _flock(self, mode: str, deadline: float) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        op = fcntl.LOCK_SH if mode == _SHARED else fcntl.LOCK_EX
        delay = 0.001
        try:
            while True:
                try:
                    fcntl.flock(fd, op | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise self._timeout_error() from None
                    # Polling rather than a blocking flock keeps the timeout enforceable.
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        except BaseException:
            os.close(fd)
            raise

    def _timeout_error(self) -> StoreError:
        return StoreError(
            f"timed out waiting for the store lock {self.path}",
            hint="another envkit process holds it; wait for it to finish or stop it "
            f"(`fuser -v {self.path}` shows which)",
        )


_registry: dict[str, FileLock] = {}
_registry_lock = threading.Lock()


def lock_for(path: Path) -> FileLock:
    """The one :class:`FileLock` of this process for ``path``."""
    key = os.path.abspath(path)
    with _registry_lock:
        lock = _registry.get(key)
        if lock is None:
            lock = _registry[key] = FileLock(Path(key))
        return lock


def _forget_after_fork() -> None:
    # A forked child does not own its parent's holders; it must take locks afresh.
    global _registry, _registry_lock
    _registry = {}
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
