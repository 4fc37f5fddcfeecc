"""Crash-safe file writes: a temp file in ``tmp/``, fsync, rename, fsync of the directory.

While a temp file is being written its writer holds ``flock(LOCK_EX)`` on it, so a
checker can tell a live write (lock held) from a leftover of a crashed one (lock free).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO

TMP_PREFIX = "tmp-"


def temp_name(purpose: str) -> str:
    """A new temp file name naming its writer, ``tmp-<purpose>-<pid>-<random>``:
    ``prune`` and ``fsck --repair`` remove those whose writer is gone."""
    return f"{TMP_PREFIX}{purpose}-{os.getpid()}-{os.urandom(8).hex()}"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TempFile:
    """A locked, exclusively-created temp file in ``tmp_dir``; :meth:`commit` publishes it.

    Use as a context manager: leaving the block without :meth:`commit` removes the file.
    """

    def __init__(self, tmp_dir: Path, purpose: str = "blob") -> None:
        self.path = tmp_dir / temp_name(purpose)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self._done = False

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        """Append ``data`` (all of it)."""
        view = memoryview(data)
        while view:
            view = view[self.file.write(view) :]

    def commit(self, dest: Path, *, replace: bool = True) -> bool:
        """fsync and rename to ``dest`` (then fsync its directory).

        With ``replace=False`` an existing ``dest`` is kept and the temp file dropped;
        returns whether ``dest`` now holds this file's content.
        """
        self.file.flush()
        os.fsync(self.file.fileno())
        if replace:
            os.replace(self.path, dest)
        else:
            try:
                os.link(self.path, dest)
            except FileExistsError:
                self.close()
                return False
            os.unlink(self.path)
        self._done = True
        fsync_dir(dest.parent)
        self.close()
        return True

    def close(self) -> None:
        """Release the file; remove it unless it was committed."""
        if not self._done:
            self._done = True
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if not self.file.closed:
            self.file.close()


def atomic_write(dest: Path, data: bytes, tmp_dir: Path, *, replace: bool = True) -> bool:
    """Write ``data`` to ``dest`` atomically; see :meth:`TempFile.commit` for ``replace``."""
    with TempFile(tmp_dir, dest.name.replace(".", "_")) as tmp:
        tmp.write(data)
        return tmp.commit(dest, replace=replace)


def is_live(path: Path) -> bool:
    """Whether a writer still holds ``path`` (a temp file being written right now)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return False
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
