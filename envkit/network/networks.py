"""User networks: create, remove, list, inspect (``envkit network ...``)."""

from __future__ import annotations

import hashlib
import ipaddress

from envkit.network import holder, ipam, links, state
from envkit.network.errors import NetworkError
from envkit.network.state import NetworkInfo

TYPE_CHECKING = False  # typing is not imported at run time (networked start-up)
if TYPE_CHECKING:
    from typing import Any


def bridge_name(network: str) -> str:
    """``ek-`` and 12 hex digits: unique per name and within the 15 bytes of IFNAMSIZ."""
    return "ek-" + hashlib.sha256(network.encode()).hexdigest()[:12]


def create(
    name: str, subnet: str | None = None, *, internal: bool = False, host_loopback: bool = False
) -> NetworkInfo:
    """Create network ``name`` (a subnet is chosen from 10.89.N.0/24 unless given).

    ``internal``: no egress at all. ``host_loopback``: containers reach the host's
    127.0.0.1 at ``host.envkit.internal``.
    """
    state.check_name("network", name)
    with state.locked():
        if state.load_network(name) is not None:
            raise NetworkError(
                f"network {name!r} already exists",
                hint=f"use it, or remove it first: envkit network rm {name}",
            )
        chosen = ipam.choose_subnet([n.subnet for n in state.all_networks()], subnet)
        net = NetworkInfo(
            name=name,
            subnet=str(chosen),
            gateway=str(ipam.gateway(chosen)),
            bridge=bridge_name(name),
            internal=internal,
            host_loopback=host_loopback,
        )
        state.save_network(net)
        running = holder.current()
        if running is not None:
            pid = running.holder.pid
            links.in_holder(pid, links.ensure_bridge, net.bridge, net.gateway, chosen.prefixlen)
            holder.sync_firewall(pid)
        return net


def get(name: str) -> NetworkInfo:
    """Network ``name``; :class:`NetworkError` if there is none."""
    net = state.load_network(name)
    if net is None:
        raise NetworkError(
            f"no network named {name!r}", hint=f"create it: envkit network create {name}"
        )
    return net


def remove(name: str) -> None:
    """Remove network ``name``; refused while containers are attached."""
    with state.locked():
        net = get(name)
        attached = [e.container for e in state.endpoints(name) if e.alive()]
        if attached:
            raise NetworkError(
                f"network {name!r} is in use by {', '.join(sorted(attached))}",
                hint="stop those containers (or disconnect them) first",
            )
        for ep in state.endpoints(name):
            state.drop_endpoint(ep)
        state.network_path(name).unlink(missing_ok=True)
        running = holder.current()
        if running is not None:
            links.in_holder(running.holder.pid, links.remove_link, net.bridge)
            holder.sync_firewall(running.holder.pid)


def list_networks() -> list[NetworkInfo]:
    """Every network, by name."""
    return state.all_networks()


def inspect(name: str) -> dict[str, Any]:
    """Network ``name`` with its attached containers, as ``network inspect`` prints it."""
    net = get(name)
    data = net.to_json()
    data.pop("last_ip", None)
    data["prefixlen"] = ipaddress.ip_network(net.subnet).prefixlen
    data["containers"] = {
        e.container: {"ip": e.ip, "aliases": list(e.aliases), "interface": e.ifname}
        for e in state.endpoints(name)
    }
    return data
