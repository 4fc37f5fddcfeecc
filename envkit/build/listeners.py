"""What a build asks of plugins, without loading plugins nobody installed.

``envkit_build_step_finished`` goes to every plugin implementing it
(:mod:`envkit.plugins.notify`), and a base image comes from the image source of its
kind. Asking the plugin manager means loading pluggy and every built-in plugin, about
as long as the rest of a fully cached ``envkit build``. None of the built-in plugins
listens to build steps (``tests/unit/build/test_cache_fast.py`` keeps it so), and the
built-in ``ref`` source looks a base up in the local store first. So the manager is
consulted only when a plugin beyond the built-ins is possible at all
(:func:`plugins_beyond_builtins`): the manager is loaded already (plugins registered
in-process, or another part of the command needed it), or an installed distribution
declares ``envkit`` entry points.
"""

from __future__ import annotations

import os
import sys

from envkit.errors import ImageNotFoundError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.oci.types import Descriptor
    from envkit.store.store import Store

#: The entry-point group of envkit plugins (``envkit.plugins.NAME``).
GROUP = "envkit"

_declared: bool | None = None
_SECTION = f"[{GROUP}]".encode()


def step_finished(step: str, key: str, *, cached: bool, seconds: float) -> None:
    """Tell plugins that build step ``step`` (cache key ``key``) finished."""
    if not plugins_beyond_builtins():
        return
    from envkit.plugins import notify  # lazy: pluggy only with third-party plugins (downward)

    notify.build_step_finished(step, key, cached, seconds)


def plugins_beyond_builtins() -> bool:
    """Whether a plugin other than envkit's own could take part (see the module)."""
    manager = sys.modules.get("envkit.plugins.manager")
    if manager is not None and getattr(manager, "_manager", None) is not None:
        return True
    global _declared
    if _declared is None:
        _declared = entry_points_declared()
    return _declared


def stored_ref(store: Store, ref: str) -> Descriptor | None:
    """The image ``ref`` (a reference or digest) names in the local store, found as the
    built-in ``ref`` image source finds it first, without loading the plugins, when no
    plugin beyond envkit's own can take part; ``None`` otherwise or when it is not
    stored (the ``ref`` source then pulls it)."""
    if plugins_beyond_builtins():
        return None

    try:
        return store.resolve(ref)
    except ImageNotFoundError:
        return None


def entry_points_declared(path: list[str] | None = None) -> bool:
    """Whether a distribution along ``path`` (``sys.path``) has an ``entry_points.txt``
    with an ``[envkit]`` section: a superset of the plugins the manager would load
    (it also skips shadowed distributions), read without importlib.metadata."""
    for entry in sys.path if path is None else path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            data = _read(os.path.join(entry or ".", name, "entry_points.txt"))
            if any(line.strip() == _SECTION for line in data.splitlines()):
                return True
    return False


def _read(path: str) -> bytes:
    """The bytes of ``path`` (``b""`` when it cannot be read): a text file object per
    distribution cost ~35 us, of every build."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return b""
    finally:
        os.close(fd)
    return b"".join(chunks)


def reset() -> None:
    """Forget what :func:`entry_points_declared` found (tests that install plugins)."""
    global _declared
    _declared = None
