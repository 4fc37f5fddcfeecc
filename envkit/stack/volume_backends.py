"""What the stack code asks of volume backends, in one place (the CLI's ``volume rm``
and the backend conformance suite use it too).

:func:`check` validates every volume of a stack before anything starts (a missing
backend or a bad option is a clear error naming the volume); :func:`runtime_mount`
turns a backend's :class:`~envkit.plugins.interfaces.MountSource` into the runtime's
mount for one container.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from envkit.errors import EnvkitError, PluginError, SpecError, VolumeError
from envkit.runtime.config import BindMount, TmpfsMount

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import MountSource, VolumeBackend
    from envkit.plugins.manager import PluginManager
    from envkit.spec import Volume


def remove_data(backend: VolumeBackend, name: str) -> None:
    """``backend.remove(name)``, retried as root of a user namespace with the
    containers' id maps when refused: what a container user wrote into a volume belongs to
    a subordinate id, which an unprivileged caller cannot delete itself."""
    try:
        backend.remove(name)
    except PermissionError:
        from envkit.host.as_root import call_as_container_root  # lazy: refused only; it forks

        call_as_container_root(partial(backend.remove, name))


def check(volumes: Iterable[Volume], manager: PluginManager | None = None) -> None:
    """Raise for the first volume whose backend is not installed or rejects its options.

    Errors name the volume (``Volume('db-data')``) and keep the backend's hint.
    """
    if manager is None:
        from envkit.plugins.manager import get_manager  # lazy for start-up: pluggy, plugins

        manager = get_manager()
    for volume in volumes:
        where = f"Volume({volume.name!r})"
        try:
            backend = manager.volume_backend(volume.backend)
        except PluginError as exc:
            raise PluginError(f"{where}: {exc.message}", hint=exc.hint) from None
        try:
            backend.validate(dict(volume.options))
        except SpecError as exc:
            field = exc.field.replace("Volume.", "", 1) if exc.field.startswith("Volume.") else ""
            message = exc.message.split(": ", 1)[-1]
            raise SpecError(f"{where}.{field or 'options'}", message, hint=exc.hint) from None
        except EnvkitError:
            raise
        except Exception as exc:  # a third-party backend's bug, reported with its name
            raise PluginError(
                f"{where}: volume backend {volume.backend!r} failed to validate options: "
                f"{type(exc).__name__}: {exc}",
                hint="report it to the plugin's authors; `envkit plugins` names the package",
            ) from None


def backend_for(volume: Volume, manager: PluginManager | None = None) -> VolumeBackend:
    """The backend that stores ``volume``."""
    if manager is None:
        from envkit.plugins.manager import get_manager  # lazy for start-up: pluggy, plugins

        manager = get_manager()
    return manager.volume_backend(volume.backend)


def runtime_mount(
    source: MountSource, target: str, readonly: bool = False
) -> BindMount | TmpfsMount:
    """The runtime's mount of ``source`` at container path ``target``."""
    if source.kind == "bind":
        return BindMount(source.source, target, readonly=readonly)
    if source.kind == "tmpfs":
        size = int(source.options.get("size", "0") or 0)
        mode = int(source.options.get("mode", "1777"), 8)
        return TmpfsMount(target, size=size, mode=mode)
    raise VolumeError(
        f"a volume backend asked for a mount of kind {source.kind!r} at {target}",
        hint="backends return MountSource.bind(path) or MountSource.tmpfs(size)",
    )
