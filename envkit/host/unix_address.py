"""Unix socket addresses that fit: a path through a directory fd.

``sockaddr_un`` holds 108 bytes, and an ``ENVKIT_HOME`` deep in a test's temp dir (or a
user's long home) makes ``$ENVKIT_HOME/.../x.sock`` longer than that (``AF_UNIX path too
long``). ``/proc/self/fd/N/x.sock``, with N an ``O_PATH`` fd of the directory, names the
same file in a few bytes, for ``bind`` and ``connect`` alike.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def short_address(path: str | os.PathLike[str]) -> Iterator[str]:
    """An address for the socket file ``path`` that is valid inside the ``with`` block."""
    directory, name = os.path.split(os.fspath(path))
    dir_fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{dir_fd}/{name}"
    finally:
        os.close(dir_fd)
