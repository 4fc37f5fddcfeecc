"""User networks: create, remove, list, inspect (``envkit network ...``)."""

from __future__ import annotations

import ipaddress

from envkit.errors import NetworkError
from envkit.network import control, egress, holder, ipam, state
from envkit.network.state import NetworkInfo
from envkit.oci.digest import hex_of, sha256_bytes

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any


def bridge_name(network: str) -> str:
    """``ek-`` and 12 hex digits: unique per name and within the 15 bytes of IFNAMSIZ."""
    # The interpreter's own SHA-256: hashlib would load OpenSSL into a stack supervisor.
    return "ek-" + hex_of(sha256_bytes(network.encode()))[:12]


def create(
    name: str,
    subnet: str | None = None,
    *,
    internal: bool = False,
    host_loopback: bool = False,
    ipv6: bool = False,
    subnet6: str | None = None,
) -> NetworkInfo:
    """Create network ``name`` (a subnet is chosen from 10.89.N.0/24 unless given).

    ``internal``: no egress at all. ``host_loopback``: containers reach the host's
    127.0.0.1 at ``host.envkit.internal``. ``ipv6`` (or ``subnet6``, an IPv6 CIDR):
    dual-stack, with an IPv6 /64 chosen from the home's unique local prefix unless
    given; each container then gets an IPv6 address beside its IPv4 one.
    """
    state.check_name("network", name)
    if subnet is not None and ":" in subnet:  # an IPv6 subnet given alone
        subnet, subnet6 = None, subnet if subnet6 is None else subnet6
    with state.locked():
        if state.load_network(name) is not None:
            raise NetworkError(
                f"network {name!r} already exists",
                hint=f"use it, or remove it first: envkit network rm {name}",
            )
        others = state.all_networks()
        chosen = ipam.choose_subnet([n.subnet for n in others], subnet)
        v6: dict[str, str] = {}
        if ipv6 or subnet6 is not None:
            net6 = ipam.choose_subnet6(
                [n.subnet6 for n in others], str(state.root()), subnet6, chosen.num_addresses
            )
            v6 = {"subnet6": str(net6), "gateway6": str(ipam.gateway6(net6))}
        net = NetworkInfo(
            name=name,
            subnet=str(chosen),
            gateway=str(ipam.gateway(chosen)),
            bridge=bridge_name(name),
            internal=internal,
            host_loopback=host_loopback,
            **v6,
        )
        state.save_network(net)
        running = holder.serving()
        if running is not None:
            control.call("bridge", holder.bridge_spec(net))
            holder.sync_firewall(running.holder.pid)
        return net


def ipv6_egress_note(net: NetworkInfo) -> str | None:
    """What to tell the user about IPv6 egress of ``net``: ``None`` when it works (or
    does not apply: an IPv4-only or internal network)."""
    if not net.subnet6 or net.internal or egress.host_has_ipv6_route():
        return None
    return (
        f"this host has no IPv6 default route: containers on {net.name!r} reach each other "
        "over IPv6, but reach the outside over IPv4 only"
    )


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
        running = holder.serving()
        if running is not None:
            control.call("remove_link", {"name": net.bridge})
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
    if net.subnet6:
        data["prefixlen6"] = ipaddress.ip_network(net.subnet6).prefixlen
    else:
        data.pop("subnet6", None)
        data.pop("gateway6", None)
    data["ipv6"] = bool(net.subnet6)
    data["containers"] = {
        e.container: {
            "ip": e.ip,
            **({"ip6": e.ip6} if e.ip6 else {}),
            "aliases": list(e.aliases),
            "interface": e.ifname,
        }
        for e in state.endpoints(name)
    }
    return data
