"""Named volumes of a stack, through the volume backend plugins.

A stack's volume ``data`` is the backend's volume ``<stack>_data`` (compose's naming),
so two stacks never share one by accident. It is created on the first ``up``, kept by
``down`` and removed by ``down -v`` (or ``envkit volume rm``).
"""

from __future__ import annotations

import os
from pathlib import Path

from envkit.runtime.config import BindMount
from envkit.spec import Stack, Volume
from envkit.spec.mounts import Mount


def full_name(stack: str, volume: Volume) -> str:
    """The backend's name of a stack's volume."""
    return f"{stack}_{volume.name}"


def ensure(stack: Stack) -> list[str]:
    """Create the stack's volumes that do not exist yet; the names of those created."""
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
