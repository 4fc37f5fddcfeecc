"""Egress: outbound TCP and DNS for containers, from the host's namespace.

Where /dev/net/tun is closed to users (so no slirp4netns or pasta), containers still
reach what the host reaches: the holder's iptables REDIRECT outbound TCP to
:data:`EGRESS_PORT`, where this daemon accepts it, reads the
original destination (``SO_ORIGINAL_DST``) and connects to it from the host's network
namespace. DNS queries to the gateway's port 53 are relayed to the host's resolvers the
same way, which also serves hosts whose resolver is a loopback address (127.0.0.53).

It runs in the network daemon (:mod:`envkit.network.netd`), which joined the holder's
user namespace, so it may enter the holder's network namespace; the listening sockets
are made by a thread that did so, every other socket (outbound, from the threads the
main thread starts) stays in the host's namespace. IPv6 (dual-stack networks) takes the
same path: ip6tables REDIRECTs to the proxy's IPv6 listener, and the proxy connects over
IPv6 from the host, which works where the host has an IPv6 route.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Sequence

from envkit import settings
from envkit.errors import NetworkError
from envkit.network import ns, relay, state
from envkit.network.state import NetworkInfo

SO_ORIGINAL_DST = 80
#: Port of the transparent egress proxy inside the holder's namespace.
EGRESS_PORT = 15001
#: Containers of a network created with ``host_loopback=True`` reach the host's
#: 127.0.0.1 at this address (named ``host.envkit.internal`` in their hosts file).
HOST_LOOPBACK = "169.254.1.2"
HOST_LOOPBACK_NAME = "host.envkit.internal"
DNS_PORT = 53
CONNECT_TIMEOUT = 10.0


def decide(
    networks: Sequence[NetworkInfo], source: str, dest: str, port: int
) -> tuple[str, int] | None:
    """Where a container at ``source`` going to ``dest:port`` is connected; ``None``: refused.

    Refused: sources outside every non-internal network, destinations inside any envkit
    subnet (networks stay isolated), and the host loopback unless the network maps it.
    """
    src = ipaddress.ip_address(source)
    dst = ipaddress.ip_address(dest)
    home = home_network(networks, src)
    if home is None or home.internal:
        return None
    if any(dst in subnet for n in networks for subnet in subnets(n)):
        return None
    if dest == HOST_LOOPBACK:
        return ("127.0.0.1", port) if home.host_loopback else None
    if dst.is_loopback or dst.is_unspecified or dst.is_multicast:
        return None
    return dest, port


def subnets(
    net: NetworkInfo,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets of ``net``: IPv4, and IPv6 on a dual-stack network."""
    found: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [ipaddress.ip_network(net.subnet)]
    if net.subnet6:
        found.append(ipaddress.ip_network(net.subnet6))
    return found


def home_network(
    networks: Sequence[NetworkInfo], src: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> NetworkInfo | None:
    """The network whose subnet (either family) holds ``src``."""
    return next((n for n in networks if any(src in s for s in subnets(n))), None)


def resolvers(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The upstream DNS servers: ``ENVKIT_NETWORK_DNS`` (``ip[:port],...``) or resolv.conf."""
    configured = settings.get("network_dns")
    found: list[tuple[str, int]] = []
    if configured:
        for item in configured.split(","):
            host, _, port = item.strip().partition(":")
            found.append((host, int(port or DNS_PORT)))
        return found
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and ":" not in parts[1]:
            found.append((parts[1], DNS_PORT))
    return found


def original_destination(conn: socket.socket) -> tuple[str, int]:
    """Where a REDIRECTed connection was going (``SO_ORIGINAL_DST``, either family)."""
    if conn.family == socket.AF_INET6:
        raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        port = struct.unpack_from("!H", raw, 2)[0]
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    return socket.inet_ntoa(raw[4:8]), port


def _proxy_connect(conn: socket.socket) -> socket.socket | None:
    dest, port = original_destination(conn)
    target = decide(state.all_networks(), conn.getpeername()[0], dest, port)
    if target is None:
        return None
    return socket.create_connection(target, timeout=CONNECT_TIMEOUT)


def _dns_upstream(client: tuple[str, int]) -> socket.socket | None:
    networks = state.all_networks()
    home = home_network(networks, ipaddress.ip_address(client[0]))
    servers = resolvers()
    if home is None or home.internal or not servers:
        return None
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.connect(servers[0])
    return up


def listeners_in(holder_pid: int) -> list[socket.socket]:
    """The proxy's TCP listeners (IPv4, and IPv6 where the kernel has it) and the DNS
    UDP listener, made inside the holder's namespace."""
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def make() -> None:
        try:
            ns.join_netns(ns.ns_path(holder_pid, "net"))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind(("0.0.0.0", EGRESS_PORT))
            tcp.listen(512)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("0.0.0.0", DNS_PORT))
            made.extend((tcp, udp))
            if socket.has_ipv6 and _ipv6_here():
                tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                tcp6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tcp6.bind(("::", EGRESS_PORT))
                tcp6.listen(512)
                made.append(tcp6)
        except BaseException as exc:
            failure.append(exc)

    # A thread of its own: setns(CLONE_NEWNET) moves only the calling thread, and this
    # one ends right after, so nothing else ever runs in the holder's namespace.
    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if failure:
        raise NetworkError(f"egress listeners in the holder's namespace: {failure[0]}")
    return made


def _ipv6_here() -> bool:
    return os.path.exists("/proc/sys/net/ipv6")


def serve_in_threads(listeners: Sequence[socket.socket]) -> None:
    """Serve the proxy and the DNS relay (from :func:`listeners_in`) in daemon threads
    started by the calling thread, which must be in the host's namespace."""
    for sock in listeners:
        if sock.type == socket.SOCK_DGRAM:
            relay.in_thread(relay.serve_udp, sock, _dns_upstream, 5.0)
        else:
            relay.in_thread(
                relay.serve_tcp, sock, _proxy_connect, relay.MAX_CONNECTIONS, relay.MAX_PER_CLIENT
            )


def host_has_ipv6_route(path: str = "/proc/net/ipv6_route") -> bool:
    """Whether the host has an IPv6 default route (egress over IPv6 can work)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        default = len(fields) >= 10 and fields[1] == "00" and fields[0] == "0" * 32
        if default and fields[9] != "lo":
            return True
    return False
