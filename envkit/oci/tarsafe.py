"""Path handling that cannot leave a root directory: the ground layer extraction stands on.

Every operation starts from a directory file descriptor and moves one component at a time
with ``O_NOFOLLOW | O_DIRECTORY``, so no symlink is ever followed on the way, whatever
the tree contains, and ``..`` never appears in a name (tar member names containing it are
refused by :func:`member_parts`).

The one assumption: nothing else modifies the tree while it is being worked on (an
extraction target is private to the extractor until it is handed over).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from envkit.errors import LayerError

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Parts = tuple[str, ...]


def member_parts(name: str, what: str = "entry") -> Parts:
    """Split a tar member name into path components relative to the root.

    Leading ``/`` is stripped (``/etc/passwd`` is ``etc/passwd`` in the root, as GNU tar
    does), empty and ``.`` components are dropped. A NUL byte or a ``..`` component
    raises :class:`LayerError`: no legitimate layer has one, so it is refused rather
    than reinterpreted.
    """
    if "\x00" in name:
        raise LayerError(
            f"layer {what} {name!r} contains a NUL byte",
            hint="the layer is corrupt or hostile; rebuild it from its source",
        )
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise LayerError(
            f"layer {what} {name!r} contains a '..' component",
            hint="layer paths must stay inside the root; rebuild the layer without '..'",
        )
    return parts


def display(parts: Sequence[str]) -> str:
    """``parts`` as a path for messages (``/`` for the root)."""
    return "/" + "/".join(parts)


def open_dir(root_fd: int, parts: Sequence[str], *, create: bool = False) -> int | None:
    """Open directory ``parts`` below ``root_fd`` without following any symlink.

    Returns a new fd (the caller closes it), or None when a component is missing and
    ``create`` is false. With ``create`` missing directories are made (mode 0755).
    A component that exists but is a symlink or not a directory raises
    :class:`LayerError`: writing through it could leave the root.
    """
    fd = os.dup(root_fd)
    try:
        for depth, part in enumerate(parts):
            try:
                child = os.open(part, _O_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _O_DIR, dir_fd=fd)
                os.fchmod(child, 0o755)  # whatever the umask
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise LayerError(
                    f"{display(parts[: depth + 1])} is a symlink or not a directory: "
                    "nothing is written through it",
                    hint="layer paths may not go through symlinks (they could leave the "
                    "root); the layer is hostile, or was made expecting symlinks followed",
                ) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir_lenient(root_fd: int, parts: Sequence[str]) -> int | None:
    """Like :func:`open_dir` without creation, but None instead of an error for a
    component that is a symlink or not a directory."""
    try:
        return open_dir(root_fd, parts)
    except LayerError:
        return None


def lstat_at(dirfd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in ``dirfd``, None when absent."""
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _make_traversable(fd: int) -> None:
    # Unprivileged, a read-only or 0000 directory cannot be emptied until we own rwx on it.
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o700 != 0o700:
        os.fchmod(fd, mode | 0o700)


def remove_at(dirfd: int, name: str) -> bool:
    """Remove ``name`` from ``dirfd``, a whole tree for a directory; False when absent.

    Symlinks are removed, never followed. Iterative, so depth is bounded only by the
    number of open files.
    """
    st = lstat_at(dirfd, name)
    if st is None:
        return False
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dirfd)
        return True
    top = os.open(name, _O_DIR, dir_fd=dirfd)
    # Each frame: (fd of a directory being emptied, its name in the parent, names left).
    stack: list[tuple[int, str, list[str]]] = []
    try:
        _make_traversable(top)
        stack.append((top, name, os.listdir(top)))
        while stack:
            fd, dir_name, names = stack[-1]
            if not names:
                stack.pop()
                os.close(fd)
                parent = stack[-1][0] if stack else dirfd
                os.rmdir(dir_name, dir_fd=parent)
                continue
            child = names.pop()
            child_st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(child_st.st_mode):
                child_fd = os.open(child, _O_DIR, dir_fd=fd)
                try:
                    _make_traversable(child_fd)
                    stack.append((child_fd, child, os.listdir(child_fd)))
                except BaseException:
                    os.close(child_fd)
                    raise
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    return True
