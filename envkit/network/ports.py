"""Published ports: host sockets relayed into a container's address in the holder.

The listening sockets are bound by the caller itself, in the host's namespace, before
anything is started: a port already taken fails right there, naming the port (and port
0 comes back as the port the kernel chose). A loopback mapping (the default,
``127.0.0.1``) is bound on ``[::1]`` too, on the same port. The sockets are then handed
to the network daemon (:mod:`envkit.network.netd`, one per home), which serves them from
threads inside the holder's network namespace, so every connection it opens towards the
container is made where the bridges are. The container's address is looked up on each
new connection, so a container that was reconnected with a new address keeps its
published ports.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import NetworkError
from envkit.network import control, state
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

#: Seconds the network daemon waits for the container to accept a relayed connection
#: (``ENVKIT_NETWORK_CONNECT_TIMEOUT`` in the environment the daemon starts with).
CONNECT_TIMEOUT = float(os.environ.get("ENVKIT_NETWORK_CONNECT_TIMEOUT") or 10.0)
PORT_RE = re.compile(
    r"^(?:(?P<ip>[0-9.]+|\[[0-9A-Fa-f:.]+\]):)?(?P<host>\d+):(?P<ctr>\d+)(?:/(?P<proto>tcp|udp))?$"
)
#: The default bind address; a mapping on it is published on :data:`LOOPBACK6` too.
LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"


class PortMapping(Value):
    """``host_ip:host_port`` on the host to ``container_port`` of the container
    (``host_ip`` of either family; written ``[::1]:8080`` for IPv6)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = "127.0.0.1"

    @classmethod
    def parse(cls, text: str) -> PortMapping:
        """``[IP:]HOST:CONTAINER[/udp]`` as ``-p`` takes it (HOST 0: a free port; an IPv6
        IP in brackets, ``[::1]:8080:80``)."""
        m = PORT_RE.match(text)
        if m is None:
            raise NetworkError(
                f"bad port mapping {text!r}", hint="use [IP:]HOST:CONTAINER[/tcp|udp], e.g. 8080:80"
            )
        ip = (m["ip"] or LOOPBACK).strip("[]")
        mapping = cls(int(m["host"]), int(m["ctr"]), m["proto"] or "tcp", ip)
        mapping.check()
        return mapping

    def check(self) -> None:
        if not 0 <= self.host_port <= 65535 or not 1 <= self.container_port <= 65535:
            raise NetworkError(
                f"port out of range in {self}", hint="ports are 1-65535 (host 0: any)"
            )
        if self.protocol not in ("tcp", "udp"):
            raise NetworkError(f"unknown protocol {self.protocol!r}", hint="use tcp or udp")
        try:
            ipaddress.ip_address(self.host_ip)
        except ValueError:
            raise NetworkError(f"bad host address {self.host_ip!r} in a port mapping") from None

    @property
    def host(self) -> str:
        """``IP:PORT`` on the host (``[IP]:PORT`` for IPv6)."""
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{ip}:{self.host_port}"

    def __str__(self) -> str:
        return f"{self.host}->{self.container_port}/{self.protocol}"


def bind(mapping: PortMapping) -> tuple[socket.socket, PortMapping]:
    """The listening socket for ``mapping`` and the mapping with the port actually bound."""
    mapping.check()
    kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
    v6 = ":" in mapping.host_ip
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    try:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((mapping.host_ip, mapping.host_port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
    except OSError as exc:
        sock.close()
        where = f"{mapping.host}/{mapping.protocol}"
        if exc.errno == errno.EADDRINUSE:
            raise NetworkError(
                f"cannot publish {mapping}: host port {where} is already in use",
                hint=f"choose another host port, or 0:{mapping.container_port} for a free one "
                f"(`ss -l{'t' if mapping.protocol == 'tcp' else 'u'}np` shows what holds it)",
            ) from None
        if exc.errno == errno.EACCES:
            raise NetworkError(
                f"cannot publish {mapping}: binding {where} needs privileges",
                hint="use a host port >= 1024 (or lower net.ipv4.ip_unprivileged_port_start)",
            ) from None
        raise NetworkError(f"cannot publish {mapping}: {where}: {exc.strerror}") from None
    port = sock.getsockname()[1]
    bound = PortMapping(port, mapping.container_port, mapping.protocol, mapping.host_ip)
    return sock, bound


class Reservation:
    """Host ports bound ahead of time, so that a port in use fails before a container
    starts; handed to :func:`publish` later (which takes the sockets over), or closed."""

    def __init__(self, pairs: Sequence[tuple[socket.socket, PortMapping]]) -> None:
        self.pairs = list(pairs)

    @property
    def mappings(self) -> list[PortMapping]:
        """The mappings as bound (port 0 resolved)."""
        return [m for _, m in self.pairs]

    def close(self) -> None:
        """Give the ports back (idempotent)."""
        for sock, _ in self.pairs:
            sock.close()
        self.pairs = []


def reserve(mappings: Sequence[PortMapping | str]) -> Reservation:
    """Bind every mapping now, in this process; :class:`NetworkError` names a port in use.

    A mapping on :data:`LOOPBACK` is bound on :data:`LOOPBACK6` too, on the same port,
    where the host has IPv6 loopback (port 0: the kernel's choice for IPv4, tried again
    when IPv6 has that port taken).
    """
    pairs: list[tuple[socket.socket, PortMapping]] = []
    try:
        for given in mappings:
            mapping = given if isinstance(given, PortMapping) else PortMapping.parse(given)
            if mapping.host_ip != LOOPBACK:
                pairs.append(bind(mapping))
                continue
            for attempt in range(8):
                sock, bound = bind(mapping)
                twin = bound.replace(host_ip=LOOPBACK6)
                try:
                    pairs += [(sock, bound), bind(twin)]
                    break
                except NetworkError as exc:
                    pairs.pop()
                    sock.close()
                    if "already in use" in exc.message and mapping.host_port == 0 and attempt < 7:
                        continue
                    if not _has_loopback6():
                        pairs.append(bind(mapping))  # IPv4 only on this host
                        break
                    raise
    except BaseException:
        Reservation(pairs).close()
        raise
    return Reservation(pairs)


def _has_loopback6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind((LOOPBACK6, 0))
        return True
    except OSError:
        return False


def container_ip(container: str) -> str | None:
    """The address of ``container`` on its first network, read from disk."""
    eps = state.container_endpoints(container)
    return eps[0].ip if eps else None


def _record_path(container: str) -> Path:
    return state.root() / "forwarders" / f"{container}.json"


def records(container: str) -> list[dict[str, Any]]:
    """The forwarders of ``container`` on disk: ``{"pid", "start", "ports"}`` each."""
    data = state.read_json(_record_path(container))
    return list(data["forwarders"]) if data else []


def all_containers() -> list[str]:
    folder = state.root() / "forwarders"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def publish(container: str, mappings: Sequence[PortMapping] | Reservation) -> list[PortMapping]:
    """Bind ``mappings`` (or take over a :class:`Reservation`'s sockets) and hand them to
    the network daemon, which serves them from now on; the mappings as bound.

    Call with the state lock held, the daemons running and ``container`` attached.
    """
    reservation = mappings if isinstance(mappings, Reservation) else reserve(mappings)
    pairs, reservation.pairs = reservation.pairs, []
    bound = [m for _, m in pairs]
    if not pairs:
        return []
    try:
        d = state.load_daemons()
        if d is None or d.netd is None:
            raise NetworkError("no network daemon runs to serve the published ports")
        control.call(
            "publish",
            {"container": container, "ports": [m.to_json() for m in bound]},
            [s.fileno() for s, _ in pairs],
        )
    finally:
        for sock, _ in pairs:
            sock.close()
    entry = {**d.netd.to_json(), "ports": [m.to_json() for m in bound]}
    state.write_json(_record_path(container), {"forwarders": [*records(container), entry]})
    return shown(bound)


def shown(mappings: Sequence[PortMapping]) -> list[PortMapping]:
    """``mappings`` as users see them: a loopback mapping's ``[::1]`` twin (bound by
    :func:`reserve` on the same port) is not listed apart, as docker lists one line per
    ``-p``; an ``[::1]`` mapping of its own is."""
    v4 = {(m.host_port, m.container_port, m.protocol) for m in mappings if m.host_ip == LOOPBACK}
    return [
        m
        for m in mappings
        if m.host_ip != LOOPBACK6 or (m.host_port, m.container_port, m.protocol) not in v4
    ]


def published(container: str) -> list[PortMapping]:
    """The ports of ``container`` served by a live network daemon (as :func:`shown`)."""
    found = []
    for entry in records(container):
        if state.Proc(entry["pid"], entry["start"]).alive():
            found += [PortMapping(**m) for m in entry["ports"]]
    return shown(found)


def unpublish(container: str) -> None:
    """Stop serving the ports of ``container`` (their listening sockets close)."""
    if any(state.Proc(e["pid"], e["start"]).alive() for e in records(container)):
        control.call("unpublish", {"container": container})
    _record_path(container).unlink(missing_ok=True)


def restart() -> None:
    """Re-publish every container's ports through a new network daemon, on the same
    host ports (the old daemon died, and its listening sockets with it)."""
    for container in all_containers():
        bound = [PortMapping(**m) for e in records(container) for m in e["ports"]]
        _record_path(container).unlink(missing_ok=True)
        if bound and state.container_endpoints(container):
            # Each exactly as it was (a loopback mapping's IPv6 twin is in the list).
            held = Reservation([])
            try:
                for mapping in bound:
                    held.pairs.append(bind(mapping))
            except BaseException:
                held.close()
                raise
            publish(container, held)
