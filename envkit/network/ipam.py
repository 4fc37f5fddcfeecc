"""Address management: choosing subnets and handing out addresses, as pure functions.

The callers keep the state (networks and endpoints on disk) and hold the state lock;
these functions only compute. Addresses are handed out round-robin after the last one
given (as CNI's host-local does), so a restarted container usually gets a new address
and a stale hosts entry cannot silently point at someone else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from envkit.network.errors import NetworkError

DEFAULT_POOL = ipaddress.IPv4Network("10.89.0.0/16")
DEFAULT_PREFIX = 24


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """``text`` as an IPv4 subnet with room for a gateway and a container."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise NetworkError(
            f"bad subnet {text!r}: {exc}", hint="give a CIDR such as 10.90.0.0/24"
        ) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise NetworkError(f"subnet {text}: only IPv4 networks are supported")
    if net.prefixlen > 30:
        raise NetworkError(
            f"subnet {text} is too small", hint="use a prefix of /30 or shorter (e.g. /24)"
        )
    return net


def choose_subnet(taken: Iterable[str], wanted: str | None = None) -> ipaddress.IPv4Network:
    """``wanted`` if it overlaps none of ``taken``, else the first free 10.89.N.0/24."""
    used = [ipaddress.ip_network(t) for t in taken]
    if wanted is not None:
        net = parse_subnet(wanted)
        clash = next((u for u in used if net.overlaps(u)), None)
        if clash is not None:
            raise NetworkError(
                f"subnet {net} overlaps {clash} of another envkit network",
                hint="choose another --subnet, or remove the other network",
            )
        return net
    for candidate in DEFAULT_POOL.subnets(new_prefix=DEFAULT_PREFIX):
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetworkError(
        f"no free /{DEFAULT_PREFIX} left in {DEFAULT_POOL}",
        hint="remove unused networks (envkit network rm) or give --subnet",
    )


def gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The bridge's address: the first host of the subnet."""
    return subnet.network_address + 1


def allocate(subnet: str, used: Iterable[str], last: str = "") -> str:
    """The next free address after ``last`` (wrapping), skipping the gateway and ``used``."""
    net = ipaddress.IPv4Network(subnet)
    gw = gateway(net)
    taken = {ipaddress.ip_address(u) for u in used} | {gw}
    first = int(gw) + 1
    end = int(net.broadcast_address)  # exclusive
    size = end - first
    start = int(ipaddress.ip_address(last)) + 1 if last else first
    for step in range(size):
        candidate = ipaddress.ip_address(first + (start - first + step) % size)
        if candidate not in taken:
            return str(candidate)
    raise NetworkError(
        f"network {subnet} has no free address left",
        hint="disconnect containers or create the network with a larger --subnet",
    )
