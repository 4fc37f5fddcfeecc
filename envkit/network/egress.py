"""The egress daemon: outbound TCP and DNS for containers, from the host's namespace.

Where /dev/net/tun is closed to users (so no slirp4netns or pasta), containers still
reach what the host reaches: the holder's iptables REDIRECT outbound TCP to
:data:`EGRESS_PORT`, where this daemon accepts it, reads the
original destination (``SO_ORIGINAL_DST``) and connects to it from the host's network
namespace. DNS queries to the gateway's port 53 are relayed to the host's resolvers the
same way, which also serves hosts whose resolver is a loopback address (127.0.0.53).

The daemon joins the holder's user namespace, so it may enter the holder's network
namespace; its listening sockets are made by a thread that did so, every other socket
(outbound, from the main thread's children) stays in the host's namespace.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Callable, Sequence

from envkit import settings
from envkit.network import ns, relay, state
from envkit.network.errors import NetworkError
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
    home = next((n for n in networks if src in ipaddress.ip_network(n.subnet)), None)
    if home is None or home.internal:
        return None
    if any(dst in ipaddress.ip_network(n.subnet) for n in networks):
        return None
    if dest == HOST_LOOPBACK:
        return ("127.0.0.1", port) if home.host_loopback else None
    if dst.is_loopback or dst.is_unspecified or dst.is_multicast:
        return None
    return dest, port


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
    src = ipaddress.ip_address(client[0])
    home = next((n for n in networks if src in ipaddress.ip_network(n.subnet)), None)
    servers = resolvers()
    if home is None or home.internal or not servers:
        return None
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.connect(servers[0])
    return up


def listeners_in(holder_pid: int) -> tuple[socket.socket, socket.socket]:
    """The proxy's TCP and the DNS UDP listener, made inside the holder's namespace."""
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
        except BaseException as exc:
            failure.append(exc)

    # A thread of its own: setns(CLONE_NEWNET) moves only the calling thread, and this
    # one ends right after, so nothing else ever runs in the holder's namespace.
    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if failure:
        raise NetworkError(f"egress listeners in the holder's namespace: {failure[0]}")
    return made[0], made[1]


def serve(holder_pid: int, ready: Callable[[], None]) -> None:
    """Body of the egress daemon (see :func:`envkit.network.ns.daemonize`)."""
    ns.join_userns(holder_pid, become_root=False)
    tcp, udp = listeners_in(holder_pid)
    ready()
    relay.in_thread(relay.serve_udp, udp, _dns_upstream, 5.0)
    relay.serve_tcp(tcp, _proxy_connect)


def start(holder_pid: int) -> state.Proc:
    """Start the egress daemon of the holder ``holder_pid``."""
    return state.Proc.of(spawn(holder_pid).wait())


def spawn(holder_pid: int) -> ns.Starting:
    """Start the egress daemon of the holder ``holder_pid``; ``wait()`` gives its pid."""
    return ns.spawn_daemon("egress", lambda ready: serve(holder_pid, ready))
