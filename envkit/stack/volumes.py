"""Named volumes of a stack, through the volume backend plugins.

A stack's volume ``data`` is the backend's volume ``<stack>_data`` (compose's naming),
so two stacks never share one by accident. It is created on the first ``up``, kept by
``down`` (unless its backend's volumes are not ``persistent``, like ``tmpfs``, or it is
compose's anonymous volume) and removed by ``down -v`` (or ``envkit volume rm``).

Each container start asks the backends to :func:`attach` its volumes (``mount``, one
``mount_id`` per container) and the runtime mounts what they answer; :func:`detach`
(``unmount``) follows when the container is reaped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from envkit.errors import EnvkitError, VolumeError
from envkit.records import Value
from envkit.runtime.config import BindMount, TmpfsMount
from envkit.spec import Stack, Volume
from envkit.spec.mounts import Mount

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import MountSource, VolumeBackend

_T = TypeVar("_T")


def full_name(stack: str, volume: Volume) -> str:
    """The backend's name of a stack's volume."""
    return f"{stack}_{volume.name}"


def check(stack: Stack) -> None:
    """Raise for the first volume of ``stack`` whose backend is missing or rejects its
    options (:func:`envkit.stack.volume_backends.check`); nothing is loaded without volumes."""
    if stack.volumes:
        from envkit.stack import volume_backends  # lazy: nothing loaded without volumes

        volume_backends.check(stack.volumes)


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


class Attached(Value):
    """A named volume its backend mounted for one container."""

    backend: VolumeBackend
    #: The backend's name of the volume (``<stack>_<volume>``).
    name: str
    mount_id: str
    source: MountSource
    target: str
    read_only: bool

    @property
    def host_dir(self) -> Path | None:
        """The host directory the container sees, when the mount is a bind."""
        return Path(self.source.source) if self.source.kind == "bind" else None


def host_mounts(stack: Stack, service_mounts: tuple[Mount, ...]) -> list[BindMount]:
    """Bind mounts of a service's host paths (relative to the stack's dir)."""
    base = stack.base_dir or Path.cwd()
    return [
        BindMount(
            str((base / os.path.expanduser(m.source)).resolve()), m.target, readonly=m.read_only
        )
        for m in service_mounts
        if not isinstance(m.source, Volume)
    ]


def attach(stack: Stack, service_mounts: tuple[Mount, ...], mount_id: str) -> list[Attached]:
    """Have each named volume's backend mount it for one container (``mount_id``);
    on a failure the ones already mounted are unmounted again and the error raised."""
    if not any(isinstance(m.source, Volume) for m in service_mounts):
        return []  # no plugin manager to load
    from envkit.plugins.manager import get_manager

    manager = get_manager()
    attached: list[Attached] = []
    try:
        for mount in service_mounts:
            if not isinstance(mount.source, Volume):
                continue
            backend = manager.volume_backend(mount.source.backend)
            name = full_name(stack.name, mount.source)
            source = _call(backend, "mount", backend.mount, name, mount_id)
            attached.append(
                Attached(backend, name, mount_id, source, mount.target, mount.read_only)
            )
    except BaseException:
        detach(attached)
        raise
    return attached


def runtime_mounts(
    stack: Stack, service_mounts: tuple[Mount, ...], attached: Sequence[Attached]
) -> list[BindMount | TmpfsMount]:
    """The runtime's mounts for a service: its volumes as their backends said and its
    host paths, in the service's order."""
    from envkit.stack.volume_backends import runtime_mount  # lazy, as in check

    by_target = {a.target: a for a in attached}
    binds = iter(host_mounts(stack, service_mounts))
    out: list[BindMount | TmpfsMount] = []
    for mount in service_mounts:
        if isinstance(mount.source, Volume):
            volume = by_target[mount.target]
            out.append(runtime_mount(volume.source, volume.target, volume.read_only))
        else:
            out.append(next(binds))
    return out


def recorded(attached: Sequence[Attached]) -> list[list[str]]:
    """``attached`` as the stack's state keeps it (:attr:`ServiceState.mounts`)."""
    return [[volume.backend.name, volume.name, volume.mount_id] for volume in attached]


def reattached(entries: Sequence[Sequence[str]]) -> list[Attached]:
    """What :func:`recorded` kept, for :func:`detach` once the container is gone (no
    mount source or target: only the backend, the volume and the mount id are used).
    A backend no longer installed is skipped."""
    if not entries:
        return []  # no plugin manager to load
    from envkit.plugins.interfaces import MountSource  # lazy: no import for types only
    from envkit.plugins.manager import get_manager  # lazy, as in attach

    manager = get_manager()
    found = []
    for backend_name, name, mount_id in entries:
        try:
            backend = manager.volume_backend(backend_name)
        except EnvkitError:
            continue
        found.append(Attached(backend, name, mount_id, MountSource.bind(""), "", False))
    return found


def detach(attached: Sequence[Attached]) -> None:
    """Tell each backend its volume's container is gone (``unmount``). Failures are
    logged, never raised: the container is gone either way."""
    for volume in attached:
        try:
            _call(volume.backend, "unmount", volume.backend.unmount, volume.name, volume.mount_id)
        except EnvkitError as exc:
            import logging  # lazy: only for a failure (a supervisor holds it for life)

            logging.getLogger("envkit.stack").warning(
                "unmount of volume %s failed: %s", volume.name, exc.message
            )


def _call(
    backend: VolumeBackend,
    what: str,
    method: Callable[[str, str], _T],
    volume: str,
    mount_id: str,
) -> _T:
    """``method(volume, mount_id)``; a third-party backend's bug (any exception but an
    EnvkitError) is reported as a VolumeError naming the backend."""
    try:
        return method(volume, mount_id)
    except EnvkitError:
        raise
    except Exception as exc:
        raise VolumeError(
            f"volume backend {backend.name!r} failed to {what} volume {volume!r}: "
            f"{type(exc).__name__}: {exc}",
            hint="report it to the plugin's authors; `envkit plugins` names the package",
        ) from None


def hand_to(attached: Sequence[Attached], uid: int, gid: int) -> None:
    """Give the empty volumes a service mounts to its container user (docker gives a new
    volume the owner of the image's dir; an empty one here has no other owner yet).
    Only bind mounts have a host directory to chown; a tmpfs is made by the runtime."""
    dirs = [d for a in attached if (d := a.host_dir) is not None]
    if dirs:
        from envkit.container.volume_seed import hand_empty_to  # lazy: the supervisor's

        hand_empty_to(dirs, uid, gid)


def remove(volumes: list[tuple[str, str]]) -> list[str]:
    """Remove ``(backend, name)`` volumes; the names removed (missing ones, and those of
    a backend no longer installed, are skipped)."""
    # lazy for start-up: pluggy and the plugins, only where there are volumes
    from envkit.plugins.manager import get_manager
    from envkit.stack.volume_backends import remove_data

    removed = []
    for backend_name, name in volumes:
        try:
            remove_data(get_manager().volume_backend(backend_name), name)
        except EnvkitError:
            continue
        removed.append(name)
    return removed


def _pairs(entries: Iterable[str]) -> list[tuple[str, str]]:
    """``backend:name`` entries (as a stack state lists volumes) as pairs."""
    return [(backend, name) for backend, _, name in (e.partition(":") for e in entries)]


def remove_entries(entries: Iterable[str]) -> list[str]:
    """Remove the ``backend:name`` volumes; the names removed."""
    pairs = _pairs(entries)
    return remove(pairs) if pairs else []


def remove_transient(entries: Iterable[str]) -> list[str]:
    """Remove the ``backend:name`` volumes (a stack state's ``volumes``) whose backend
    does not keep data across ``down`` (``capabilities().persistent`` false, like
    ``tmpfs``); the names removed. A backend no longer installed is skipped."""
    pairs = _pairs(entries)
    if not pairs:
        return []
    from envkit.plugins.manager import get_manager  # lazy for start-up, as in remove

    manager = get_manager()
    transient: list[tuple[str, str]] = []
    for backend_name, name in pairs:
        try:
            if not manager.volume_backend(backend_name).capabilities().persistent:
                transient.append((backend_name, name))
        except EnvkitError:
            continue
    return remove(transient)


def seed(attached: Sequence[Attached], layers: Sequence[str]) -> list[str]:
    """Copy the image's content at each named volume's mount path into the volume when
    the volume is empty (docker's rule), owners and modes kept; the volumes seeded.
    Only volumes mounted as a host directory (a bind) writable are seeded
    (:func:`envkit.container.volume_seed.seed_dir`).
    """
    from envkit.container.volume_seed import seed_dir  # lazy: only the supervisor seeds

    return [
        mount.name
        for mount in attached
        if (volume := mount.host_dir) is not None
        and not mount.read_only
        and seed_dir(volume, layers, mount.target)
    ]
