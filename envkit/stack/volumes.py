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

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from functools import partial
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
    from envkit.host import idmap  # lazy: only the supervisor; id maps stay off `up`

    dirs = [d for a in attached if (d := a.host_dir) is not None]
    if not dirs:
        return
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
    Only volumes mounted as a host directory (a bind) writable are seeded.

    ``layers`` are the image's lower dirs, top first (snapshots carry no whiteouts, so
    the image is their union with the upper layer winning).
    """
    # lazy: only the supervisor seeds; as_root forks and rootfs uses ctypes
    from envkit.host.as_root import with_container_owners
    from envkit.runtime.rootfs import secure_join

    seeded = []
    for mount in attached:
        volume = mount.host_dir
        if volume is None or mount.read_only:
            continue
        sources = [secure_join(layer, mount.target) for layer in reversed(layers)]
        sources = [s for s in sources if os.path.isdir(s) and not os.path.islink(s)]
        if not sources or any(volume.iterdir()):
            continue
        # Rootless, the caller could neither read a 0700 directory of a subordinate id
        # nor give the copy its owner: the copy is made as container root then. shutil
        # copies: imported here, before the fork (the child imports nothing).
        import shutil  # noqa: F401

        with_container_owners(partial(_seed_one, sources, str(volume)), _seed_error)
        seeded.append(mount.name)
    return seeded


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
    import shutil  # loaded by seed() before the fork: a look-up in sys.modules here

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
