"""Call a function as root of a new user namespace with the containers' id maps.

Files the function reads or creates are then seen with their container owners: the
host ids that container ids stand for (as root: the subordinate range; rootless: the
caller and its subordinate ids). The build writes run-step layers this way and the
Debian source unpacks its root file systems this way: one code path for root and
rootless callers.

The function runs in a forked child (:func:`envkit.host.forking.call_in_child`); its
JSON-able result comes back to the caller, and an exception it raises comes back as
:class:`ChildError` with the original type's name, message and hint; except a full or
unwritable home, which comes back as the :class:`~envkit.errors.HomeError` that names it
(not as the caller's failure). Forks follow :mod:`envkit.host.forking`'s lock policy
(:data:`FORK_LOCK`, re-exported here for the callers that hold it around container
starts).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable, Sequence

from envkit.errors import ChildError, EnvkitError, HomeError
from envkit.host import idmap, syscalls
from envkit.host.forking import FORK_LOCK, call_in_child, start_child

__all__ = [
    "FORK_LOCK",
    "call_as_container_root",
    "run_as_container_root",
    "subordinate_owners",
    "with_container_owners",
]


def call_as_container_root(fn: Callable[[], object]) -> object:
    """``fn()`` in a child that is root of a new user namespace mapped by ``idmap.plan()``;
    returns its result (JSON-able) or raises :class:`ChildError` (``type_name``: the
    class of what ``fn`` raised), or :class:`~envkit.errors.HomeError`."""
    from envkit import settings  # the child converts a full home with it: no import there

    maps = idmap.plan()
    try:
        return call_in_child(
            _as_root,
            fn,
            settings.storage_error,
            what="the process in the containers' user namespace",
            setup=_unshare_user,
            parent_step=maps.write,
        )
    except (ChildError, HomeError):
        raise
    except EnvkitError as exc:  # the caller's own errors, as ChildError like any other
        raise ChildError(exc.message, hint=exc.hint, type_name=type(exc).__name__) from None


def _unshare_user() -> None:
    syscalls.unshare(syscalls.CLONE_NEWUSER)


def _as_root(
    fn: Callable[[], object], storage_error: Callable[[OSError], HomeError | None]
) -> object:  # pragma: no cover - runs in the child, once its maps are written
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.umask(0o022)
    try:
        return fn()
    except OSError as exc:
        # A full or unwritable home is the home's matter, whatever the caller was
        # doing in the child (writing a layer): it comes back as that HomeError.
        raise storage_error(exc) or exc from None


def subordinate_owners() -> bool:
    """Whether files of container users belong to subordinate ids this process may
    neither read (when private) nor chown: rootless with subordinate ids. As root, or
    under a single-id map, every such file is within reach."""
    return os.geteuid() != 0 and idmap.plan().use_helpers


def with_container_owners(fn: Callable[[], object], error: Callable[..., Exception]) -> object:
    """``fn()`` where files of container users are within reach: in this process, or,
    when :func:`subordinate_owners`, as root of the containers' user namespace (the
    result then comes back JSON-decoded: tuples as lists). A failure there is raised as
    ``error(message, hint=hint)`` with the child's message and hint."""
    if not subordinate_owners():
        return fn()
    try:
        return call_as_container_root(fn)
    except ChildError as exc:
        raise error(exc.message, hint=exc.hint) from None


def run_as_container_root(argv: Sequence[str]) -> int:
    """Run ``argv`` (searched on PATH) as root of a new user namespace mapped by
    ``idmap.plan()``, as ``podman unshare`` does; its exit code (128+N on signal N, 127
    when it cannot be run). Files of container users show with their container owners
    there, so they can be listed, changed or removed."""
    maps = idmap.plan()
    try:
        pid = start_child(
            _exec_as_root, list(argv), what=argv[0], setup=_unshare_user, parent_step=maps.write
        )
    except ChildError as exc:
        os.write(2, f"envkit: error: {argv[0]}: {exc.message}\n".encode())
        return 127 if exc.errno == errno.ENOENT else 1
    # The terminal's Ctrl-C and Ctrl-\ are the command's to handle, as with os.system.
    previous = [signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)]
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in zip((signal.SIGINT, signal.SIGQUIT), previous, strict=True):
            signal.signal(sig, handler)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _exec_as_root(argv: list[str]) -> None:  # pragma: no cover - runs in the child
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.umask(0o022)
    os.execvp(argv[0], argv)
