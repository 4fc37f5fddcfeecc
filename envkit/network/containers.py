"""The entry points the runtime and the CLI use beside networks and endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envkit.errors import NetworkError
from envkit.network import endpoints, names, ports, state
from envkit.network.ports import PortMapping


def prepare(lease: str | None = None) -> int:
    """The pid of the running holder, started if needed.

    A container to be networked joins ``/proc/<pid>/ns/user`` and unshares its own
    network namespace there, then is passed to :func:`envkit.network.connect`. The
    holder stays up for the calling process until it connects something or exits.
    With ``lease`` (a name from :func:`envkit.network.endpoints.lease_name`), it stays
    up until that lease is released (``endpoints.release_lease``) or the process exits:
    one lease per container, for a process that starts and stops several at once.
    """
    with state.locked():
        endpoints.reap_locked()
        pid = endpoints.ensure_running().holder.pid
        endpoints.take_lease(lease if lease is not None else endpoints.process_lease())
        return pid


def release(lease: str) -> None:
    """Drop ``lease``, taken by :func:`prepare`; the holder and the network daemon stop
    when nothing else needs them (no container, published port or other lease)."""
    with state.locked():
        endpoints.release_lease(lease)
        endpoints.stop_if_unused()


def reserve_ports(mappings: Sequence[PortMapping | str]) -> ports.Reservation:
    """Bind the host side of ``mappings`` now, before the container exists.

    A host port in use raises :class:`NetworkError` naming it. Pass the reservation to
    :func:`publish` once the container is connected, or ``close()`` it.
    """
    return ports.reserve(mappings)


def publish(
    container: str, mappings: Sequence[PortMapping | str] | ports.Reservation
) -> list[PortMapping]:
    """Publish ports of a connected ``container``; the mappings as bound (port 0 resolved).

    A host port already in use raises :class:`NetworkError` naming it, before anything
    starts (:func:`reserve_ports` checks even earlier). The network daemon serves them
    until :func:`unpublish`, or until the container is reaped.
    """
    parsed = (
        mappings
        if isinstance(mappings, ports.Reservation)
        else [m if isinstance(m, PortMapping) else PortMapping.parse(m) for m in mappings]
    )
    with state.locked():
        if not state.container_endpoints(container):
            raise NetworkError(
                f"container {container!r} is on no network: its ports cannot be published",
                hint="connect it to a network first",
            )
        endpoints.ensure_running()
        return ports.publish(container, parsed)


def unpublish(container: str) -> None:
    """Stop serving the published ports of ``container``."""
    with state.locked():
        ports.unpublish(container)
        endpoints.stop_if_unused()


def published(container: str) -> list[PortMapping]:
    """The ports of ``container`` published now (``envkit port``)."""
    return ports.published(container)


def hosts_file(container: str) -> Path:
    """The managed hosts file of ``container``, to bind-mount at /etc/hosts."""
    path = names.hosts_path(container)
    if not path.exists():
        raise NetworkError(f"container {container!r} has no hosts file: it is on no network")
    return path


def resolv_conf(container: str) -> Path:
    """The managed resolv.conf of ``container``, to bind-mount at /etc/resolv.conf."""
    path = names.resolv_path(container)
    if not path.exists():
        raise NetworkError(f"container {container!r} has no resolv.conf: it is on no network")
    return path
