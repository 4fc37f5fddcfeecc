"""Named volumes of a stack, through the volume backend plugins.

A stack's volume ``data`` is the backend's volume ``<stack>_data`` (compose's naming),
so two stacks never share one by accident. It is created on the first ``up``, kept by
``down`` and removed by ``down -v`` (or ``envkit volume rm``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from envkit.runtime.config import BindMount
from envkit.spec import Stack, Volume
from envkit.spec.mounts import Mount


def full_name(stack: str, volume: Volume) -> str:
    """The backend's name of a stack's volume."""
    return f"{stack}_{volume.name}"


def ensure(stack: Stack) -> list[str]:
    """Create the stack's volumes that do not exist yet; the names of those created."""
    if not stack.volumes:
        return []  # no plugin manager to load
    from envkit.plugins.manager import get_manager

    manager = get_manager()
    created = []
    for volume in stack.volumes:
        backend = manager.volume_backend(volume.backend)
        name = full_name(stack.name, volume)
        if name not in backend.list():
            backend.create(name, dict(volume.options))
            created.append(name)
    return created


def mounts(stack: Stack, service_mounts: tuple[Mount, ...]) -> list[BindMount]:
    """Bind mounts for a service's volumes and host paths (relative to the stack's dir)."""
    if not service_mounts:
        return []
    from envkit.plugins.manager import get_manager

    manager = get_manager()
    base = stack.base_dir or Path.cwd()
    out = []
    for mount in service_mounts:
        if isinstance(mount.source, Volume):
            backend = manager.volume_backend(mount.source.backend)
            source = str(backend.mountpoint(full_name(stack.name, mount.source)))
        else:
            source = str((base / os.path.expanduser(mount.source)).resolve())
        out.append(BindMount(source, mount.target, readonly=mount.read_only))
    return out


def hand_to(stack: Stack, service_mounts: tuple[Mount, ...], uid: int, gid: int) -> None:
    """Give the empty volumes a service mounts to its container user (docker gives a new
    volume the owner of the image's dir; an empty one here has no other owner yet)."""
    from envkit.errors import EnvkitError
    from envkit.plugins.manager import get_manager
    from envkit.runtime import idmap

    if not any(isinstance(m.source, Volume) for m in service_mounts):
        return
    maps = idmap.plan()
    for mount in service_mounts:
        if not isinstance(mount.source, Volume):
            continue
        backend = get_manager().volume_backend(mount.source.backend)
        path = Path(backend.mountpoint(full_name(stack.name, mount.source)))
        try:
            if any(path.iterdir()):
                continue
            host = maps.to_host_uid(uid), maps.to_host_gid(gid)
            if os.stat(path).st_uid != host[0]:
                os.chown(path, *host)
        except (OSError, EnvkitError):
            continue  # an unprivileged caller may not chown: container root still owns it


def remove(volumes: list[tuple[str, str]]) -> list[str]:
    """Remove ``(backend, name)`` volumes; the names removed (missing ones are skipped)."""
    from envkit.errors import EnvkitError
    from envkit.plugins.manager import get_manager

    removed = []
    for backend_name, name in volumes:
        backend = get_manager().volume_backend(backend_name)
        try:
            backend.remove(name)
        except EnvkitError:
            continue
        removed.append(name)
    return removed


def seed(stack: Stack, service_mounts: tuple[Mount, ...], layers: Sequence[str]) -> list[str]:
    """Copy the image's content at each named volume's mount path into the volume when
    the volume is empty (docker's rule), owners and modes kept; the volumes seeded.

    ``layers`` are the image's lower dirs, top first (snapshots carry no whiteouts, so
    the image is their union with the upper layer winning).
    """
    from envkit.plugins.manager import get_manager
    from envkit.runtime.rootfs import secure_join

    seeded = []
    for mount in service_mounts:
        if not isinstance(mount.source, Volume) or mount.read_only:
            continue
        backend = get_manager().volume_backend(mount.source.backend)
        volume = Path(backend.mountpoint(full_name(stack.name, mount.source)))
        sources = [secure_join(layer, mount.target) for layer in reversed(layers)]
        sources = [s for s in sources if os.path.isdir(s) and not os.path.islink(s)]
        if not sources or any(volume.iterdir()):
            continue
        for source in sources:
            _copy_tree(source, str(volume))
        _copy_owner(sources[-1], str(volume))
        seeded.append(full_name(stack.name, mount.source))
    return seeded


def _copy_tree(source: str, target: str) -> None:
    """Merge ``source`` into ``target`` (what is in ``source`` wins), never following a
    symlink of either tree."""
    import shutil

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
