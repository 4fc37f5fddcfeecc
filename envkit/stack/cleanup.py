"""Removing what a stack left: after its supervisor stopped, or after it was killed."""

from __future__ import annotations

import signal
from contextlib import suppress

from envkit.errors import EnvkitError
from envkit.runtime import state as rs
from envkit.stack import secrets
from envkit.stack import state as ss


def remove_networks(names: list[str]) -> None:
    """Remove a stack's networks (those in use by others stay)."""
    from envkit.stack import networking  # lazy: it imports the spec; `down -p NAME` does not

    networking.remove(names)


def remove_state_dir(name: str) -> None:
    """Delete ``$ENVKIT_HOME/stacks/<name>`` (state and logs)."""
    import shutil  # lazy: a supervisor needs it only at its end (it loads zlib, bz2, lzma)

    shutil.rmtree(ss.stack_dir(name), ignore_errors=True)


def remove_leftovers(record: ss.StackState) -> None:
    """Remove the containers, networks, secret files, non-persistent volumes and state
    of a stack whose supervisor is gone (``kill -9``): what its own teardown would have
    removed."""
    rs.reap()
    for service in record.services.values():
        if not service.container:
            continue
        found = rs.load(rs.containers_dir() / service.container)
        if found is None:
            continue
        if rs.alive(found.pid, found.pid_start):
            rs.kill_init(found, signal.SIGKILL)
            rs.wait_gone(found.pid, found.pid_start, 5.0)
        with suppress(EnvkitError, OSError):
            rs.remove(found)
    with suppress(EnvkitError):
        from envkit import network  # lazy: keeps the network package off `up` and `down`

        network.reap()
    remove_networks(record.networks)
    secrets.remove(record.secrets_dir)
    if record.volumes:
        from envkit.stack import volumes  # imports the spec: only when there are some

        volumes.remove_transient(record.volumes)
        volumes.remove_entries(record.anonymous_volumes)
    remove_state_dir(record.name)
