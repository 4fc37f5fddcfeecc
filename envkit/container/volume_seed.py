"""A named volume's first content, as docker gives it: the image's files at the mount
path copied into an empty volume (owners and modes kept), or, when the image has
nothing there, the empty volume handed to the container's user. Used by stacks
(:mod:`envkit.stack.volumes`) and by ``envkit run -v NAME:/path``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from envkit.errors import EnvkitError, VolumeError


def seed_dir(volume: Path, layers: Sequence[str], target: str) -> bool:
    """Copy the image's content at ``target`` into the host directory ``volume`` when it
    is empty; whether it did. ``layers`` are the image's lower dirs, top first
    (snapshots carry no whiteouts, so the image is their union with the upper layer
    winning)."""
    # lazy: as_root forks and rootfs uses ctypes
    from envkit.host.as_root import with_container_owners
    from envkit.runtime.rootfs import secure_join

    sources = [secure_join(layer, target) for layer in reversed(layers)]
    sources = [s for s in sources if os.path.isdir(s) and not os.path.islink(s)]
    if not sources or any(volume.iterdir()):
        return False
    # Rootless, the caller could neither read a 0700 directory of a subordinate id nor
    # give the copy its owner: the copy is made as container root then. shutil copies:
    # imported here, before the fork (the child imports nothing).
    import shutil  # noqa: F401

    with_container_owners(partial(_seed_one, sources, str(volume)), _seed_error)
    return True


def hand_empty_to(dirs: Sequence[Path], uid: int, gid: int) -> None:
    """Give each empty directory of ``dirs`` to container user ``uid:gid`` (an id that
    is not mapped leaves it to container root)."""
    from envkit.host import idmap  # lazy: id maps stay off `up`

    maps = idmap.plan()
    for path in dirs:
        try:
            if any(path.iterdir()):
                continue
            host = maps.to_host_uid(uid), maps.to_host_gid(gid)
            if os.stat(path).st_uid != host[0]:
                try:
                    os.chown(path, *host)
                except PermissionError:
                    _chown_as_container_root(path, uid, gid)
        except (OSError, EnvkitError):
            continue  # the id is not mapped: container root keeps it


def _chown_as_container_root(path: Path, uid: int, gid: int) -> None:
    """Chown ``path`` to container ids ``uid:gid`` from inside a user namespace mapped
    as the containers' are: how an unprivileged caller hands a dir to a subordinate id."""
    from envkit.host.as_root import call_as_container_root  # lazy: refused only; it forks

    call_as_container_root(lambda: os.chown(path, uid, gid))


def _seed_error(message: str, hint: str | None = None) -> VolumeError:
    # The child's hint (if any) gives way to what to check on this host.
    return VolumeError(
        f"cannot seed a volume from the image: {message}",
        hint="`envkit doctor` checks user namespaces and subordinate ids",
    )


def _seed_one(sources: Sequence[str], volume: str) -> None:
    for source in sources:
        _copy_tree(source, volume)
    _copy_owner(sources[-1], volume)


def _copy_tree(source: str, target: str) -> None:
    """Merge ``source`` into ``target`` (what is in ``source`` wins), never following a
    symlink of either tree."""
    import shutil  # loaded by seed_dir() before the fork: a look-up in sys.modules here

    for root, dirs, names in os.walk(source):
        relative = os.path.relpath(root, source)
        here = os.path.normpath(os.path.join(target, relative))
        for name in dirs:
            src, dst = os.path.join(root, name), os.path.join(here, name)
            if os.path.islink(src):
                names.append(name)  # copied as a link below, never walked into
                continue
            if os.path.lexists(dst) and not os.path.isdir(dst):
                os.unlink(dst)
            os.makedirs(dst, exist_ok=True)
            _copy_owner(src, dst)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in names:
            src, dst = os.path.join(root, name), os.path.join(here, name)
            if os.path.lexists(dst):
                if os.path.isdir(dst) and not os.path.islink(dst):
                    shutil.rmtree(dst)
                else:
                    os.unlink(dst)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            elif os.path.isfile(src):
                shutil.copy2(src, dst, follow_symlinks=False)
            else:
                continue  # device nodes and fifos are not volume content
            _copy_owner(src, dst)


def _copy_owner(source: str, target: str) -> None:
    st = os.lstat(source)
    # An unprivileged caller keeps its own ids: container root owns the copy then.
    with contextlib.suppress(OSError):
        os.lchown(target, st.st_uid, st.st_gid)
    if not os.path.islink(target):
        os.chmod(target, st.st_mode & 0o7777)
