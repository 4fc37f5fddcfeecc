"""What a build asks of plugins, without loading plugins nobody installed.

``envkit_build_step_finished`` goes to every plugin implementing it
(:mod:`envkit.plugins.notify`), and a base image comes from the image source of its
kind. The built-in ``ref`` source looks a base up in the local store first, so with no
plugin beyond the built-ins (:func:`envkit.plugins.presence.plugins_beyond_builtins`)
a build finds a stored base without loading the plugin manager.
"""

from __future__ import annotations

from envkit.errors import ImageNotFoundError
from envkit.plugins.presence import plugins_beyond_builtins

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.oci.types import Descriptor
    from envkit.store.store import Store


def step_finished(step: str, key: str, *, cached: bool, seconds: float) -> None:
    """Tell plugins that build step ``step`` (cache key ``key``) finished."""
    if not plugins_beyond_builtins():
        return  # not even notify's import on a build's path
    from envkit.plugins import notify  # lazy: only with a plugin to tell (downward)

    notify.build_step_finished(step, key, cached, seconds)


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
