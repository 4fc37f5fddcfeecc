"""A run step's overlay upper dir as a layer, written from inside its user namespace.

The container wrote the upper dir as its own ids, which on the host are the subordinate
ids of the container's id map (as root: a high range; rootless: the caller and its
subordinate range). A forked child enters a new user namespace with the same maps and
becomes its root, so it sees every file with its container owner and may read all of
them: the layer gets container ids (0:0, 1000:1000...), never host ones, with one code
path for root and rootless builds.

The child also removes the mount points the runtime had to create (``/run/secrets/x``
for a secret, the targets of cache mounts) when the image did not have them and they are
still empty, so that no trace of a mount reaches the layer.

The child comes from :func:`envkit.host.as_root.call_as_container_root`, whose
:data:`FORK_LOCK` also serialises the executor's container starts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import BuildError, ChildError
from envkit.host.as_root import call_as_container_root
from envkit.oci.layer_writer import LayerInfo, write_layer

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

    from envkit.oci.layer_writer import Compression

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def write_upper_layer(
    upper: Path,
    out: BinaryIO,
    *,
    stubs: Sequence[str] = (),
    epoch: int,
    compression: Compression,
    level: int | None = None,
) -> LayerInfo:
    """Write the upper dir ``upper`` to ``out`` (an open file) as a layer.

    ``stubs`` are image paths (``/run/secrets/x``) to remove first when they are an
    empty file or an empty directory, deepest first. ``level`` is the compression level
    (``None``: the compressor's default).
    """
    out.flush()
    root_fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def write() -> list[object]:  # runs as root of the child's user namespace
        _remove_stubs(root_fd, stubs)
        with os.fdopen(os.dup(out.fileno()), "wb") as sink:
            info = write_layer(
                Path(f"/proc/self/fd/{root_fd}"),
                sink,
                compression=compression,
                level=level,
                source_date_epoch=epoch,
                overlay_upper=True,
            )
        return [info.digest, info.size, info.diff_id, info.media_type]

    try:
        result = call_as_container_root(write)
    except ChildError as exc:
        raise BuildError(
            f"cannot write the layer of a run step: {exc.message}",
            hint="ENVKIT_DEBUG=1 shows more; `envkit doctor` checks user namespaces",
        ) from None
    finally:
        os.close(root_fd)
    assert isinstance(result, list)
    digest, size, diff_id, media_type = result
    out.seek(0, os.SEEK_END)
    return LayerInfo(str(digest), int(size), str(diff_id), str(media_type))


def _remove_stubs(root_fd: int, stubs: Sequence[str]) -> None:
    """Remove empty mount points, deepest first, never following a symlink."""
    for path in sorted(set(stubs), key=lambda p: p.count("/"), reverse=True):
        *parents, name = path.strip("/").split("/")
        dir_fd = _open_below(root_fd, parents)
        if dir_fd is None:
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(name, dir_fd=dir_fd)  # fails, and is kept, when not empty
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


def _open_below(root_fd: int, parts: Sequence[str]) -> int | None:
    """The directory ``parts`` below ``root_fd``, each component opened without following
    a symlink (the upper dir is the container's and may hold hostile links)."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            nxt = os.open(part, _O_DIR, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = nxt
    return fd
