"""Run a function as root of a user namespace with the containers' id maps.

Files it creates then belong to the host ids that container ids stand for (as root: the
subordinate range; rootless: the caller and its subordinate ids), so a root file system
unpacked this way can be a container's overlay upper dir and keep owners like
``root:shadow``. The function runs in a forked child; an :class:`EnvkitError` it raises
is raised again in the caller with its message and hint.
"""

from __future__ import annotations

from collections.abc import Callable

from envkit import errors
from envkit.errors import BootstrapError, ChildError, DebianError
from envkit.host import as_root


def call_as_container_root(fn: Callable[[], None], what: str) -> None:
    """Call ``fn`` in a child process that is root of a new user namespace."""
    try:
        as_root.call_as_container_root(fn)
    except ChildError as exc:
        message = f"{what}: {exc.message}"
        hint = exc.hint or "ENVKIT_DEBUG=1 shows more; `envkit doctor` checks user namespaces"
        kind = getattr(errors, exc.type_name, None)
        if isinstance(kind, type) and issubclass(kind, DebianError):
            raise kind(message, hint=hint) from None
        raise BootstrapError(message, hint=hint) from None
