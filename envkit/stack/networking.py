"""A stack's networks: ``<stack>_<network>`` (compose's ``<project>_default``), so that
services find each other by service name and stacks stay apart.

Each service joins the networks it names (``"default"`` when it names none), under
its service name and its aliases, and publishes its ports on 127.0.0.1 unless a port
mapping names another address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from envkit import network
from envkit.errors import EnvkitError
from envkit.network import PortMapping
from envkit.spec import Stack


def full_name(stack: str, network: str) -> str:
    """The envkit network of a stack's network."""
    return f"{stack}_{network}"


def names(stack: Stack, services: Sequence[str]) -> list[str]:
    """The envkit networks that services ``services`` of ``stack`` join."""
    found = {n.name for s in services for n in stack.service_networks(s)}
    return [full_name(stack.name, n) for n in sorted(found)]


def create(stack: Stack, services: Sequence[str]) -> list[str]:
    """Create the networks ``services`` need that do not exist; the names created.

    A network that a service with ``extra_hosts`` naming ``host-gateway`` joins reaches
    the host's loopback (compose's ``host.docker.internal:host-gateway``)."""
    existing = {n.name for n in network.list_networks()}
    wanted = {n.name: n for s in services for n in stack.service_networks(s)}
    to_host = {
        n.name
        for s in stack.services
        if any(address == "host-gateway" for _, address in s.extra_hosts)
        for n in stack.service_networks(s.name)
    }
    created = []
    for short in sorted(wanted):
        name = full_name(stack.name, short)
        if name in existing:
            continue
        spec = wanted[short]
        network.create(
            name,
            spec.subnet,
            internal=spec.internal,
            ipv6=spec.ipv6,
            host_loopback=short in to_host,
        )
        created.append(name)
    return created


def run_options(stack: Stack, service: str) -> dict[str, Any]:
    """The network arguments of :func:`envkit.run` for a service of ``stack``."""
    spec = stack[service]
    if spec.network_mode is not None:  # the host's network, or none
        return {"network": [spec.network_mode], "network_aliases": [], "ports": []}
    return {
        "network": [full_name(stack.name, n.name) for n in stack.service_networks(service)],
        "network_aliases": [service, *(a for a in spec.aliases if a != service)],
        "ports": [
            PortMapping(p.host_port, p.container_port, p.protocol, p.host_ip) for p in spec.ports
        ],
    }


def describe_ports(container: object) -> list[str]:
    """A running container's published ports, ``IP:HOST->CONTAINER/PROTO``."""
    ports = getattr(container, "ports", None)
    if ports is None:
        return []
    return [f"{m.host_ip}:{m.host_port}->{m.container_port}/{m.protocol}" for m in ports()]


def remove(names: Sequence[str]) -> None:
    """Remove networks ``names``; those still in use or already gone are left alone."""
    for name in names:
        with contextlib.suppress(EnvkitError):
            network.remove(name)
