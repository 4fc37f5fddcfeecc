"""Address management: choosing subnets and handing out addresses, as pure functions.

The callers keep the state (networks and endpoints on disk) and hold the state lock;
these functions only compute. Addresses are handed out round-robin after the last one
given (as CNI's host-local does), so a restarted container usually gets a new address
and a stale hosts entry cannot silently point at someone else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from envkit.errors import NetworkError
from envkit.oci.digest import hex_of, sha256_bytes  # the interpreter's SHA-256: no OpenSSL loaded

DEFAULT_POOL = ipaddress.IPv4Network("10.89.0.0/16")
DEFAULT_PREFIX = 24
#: IPv6 subnets are /64s of a unique local /48 (RFC 4193: fd00::/8 and a 40-bit global
#: id), the id derived from the envkit home, so two homes on one host differ.
PREFIX6 = 64


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """``text`` as an IPv4 subnet with room for a gateway and a container."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise NetworkError(
            f"bad subnet {text!r}: {exc}", hint="give a CIDR such as 10.90.0.0/24"
        ) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise NetworkError(
            f"subnet {text} is an IPv6 network where an IPv4 one is needed",
            hint="give the IPv4 subnet as --subnet too, with --ipv6 (or a second --subnet)",
        )
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


def ula_prefix(seed: str) -> ipaddress.IPv6Network:
    """The unique local /48 of an envkit home: ``fd`` and 40 bits of sha256(``seed``)."""
    global_id = int(hex_of(sha256_bytes(seed.encode()))[:10], 16)
    return ipaddress.IPv6Network(((0xFD << 120) | (global_id << 80), 48))


def parse_subnet6(text: str) -> ipaddress.IPv6Network:
    """``text`` as an IPv6 subnet with room for a gateway and a container."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise NetworkError(
            f"bad subnet {text!r}: {exc}", hint="give a CIDR such as fd12:3456:789a:1::/64"
        ) from None
    if not isinstance(net, ipaddress.IPv6Network):
        raise NetworkError(f"subnet {text} is not an IPv6 network")
    if net.prefixlen > 120:
        raise NetworkError(
            f"subnet {text} is too small", hint="use a prefix of /120 or shorter (e.g. /64)"
        )
    return net


def choose_subnet6(
    taken: Iterable[str], seed: str, wanted: str | None = None, room: int = 256
) -> ipaddress.IPv6Network:
    """``wanted`` if it overlaps none of ``taken``, else the first free /64 of the home's
    unique local /48 (:func:`ula_prefix`). ``room``: addresses the IPv4 subnet holds
    (container N of the IPv4 side is host N of the IPv6 side, see :func:`address6`)."""
    used = [ipaddress.ip_network(t) for t in taken if t]
    if wanted is not None:
        net = parse_subnet6(wanted)
        clash = next((u for u in used if net.overlaps(u)), None)
        if clash is not None:
            raise NetworkError(
                f"subnet {net} overlaps {clash} of another envkit network",
                hint="choose another IPv6 --subnet, or remove the other network",
            )
        if net.num_addresses < room:
            raise NetworkError(
                f"IPv6 subnet {net} is smaller than the IPv4 subnet ({room} addresses)",
                hint="give a larger IPv6 subnet (a /64 is usual)",
            )
        return net
    for candidate in ula_prefix(seed).subnets(new_prefix=PREFIX6):
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetworkError(  # pragma: no cover - 65536 networks
        "no free IPv6 /64 left", hint="remove unused networks or give an IPv6 --subnet"
    )


def gateway6(subnet: ipaddress.IPv6Network) -> ipaddress.IPv6Address:
    """The bridge's IPv6 address: the first host of the subnet (``::1``)."""
    return subnet.network_address + 1


def address6(subnet: str, subnet6: str, ip: str) -> str:
    """The IPv6 address of the container that has ``ip`` on the IPv4 side: the same
    host number, so the two families are allocated together and never disagree."""
    offset = int(ipaddress.IPv4Address(ip)) - int(ipaddress.IPv4Network(subnet).network_address)
    return str(ipaddress.IPv6Network(subnet6).network_address + offset)
