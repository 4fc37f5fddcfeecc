"""Name resolution: managed hosts files and resolv.conf, one pair per container.

Chosen over a DNS server answering for the networks because it needs no daemon on the
resolution path, works with every libc and with static binaries, and keeps working on an
``internal`` network. Every connect and disconnect rewrites the hosts file of every
container sharing a network with the changed one, so a restarted container that got a
new address is found under its name again. Files are rewritten *in place* (truncate and
write), never replaced: the runtime bind-mounts them, and a bind mount keeps pointing at
the inode it was made from.

On a dual-stack network each name has two lines, the IPv4 address (A) and the IPv6
one (AAAA): glibc and musl answer ``getaddrinfo`` with both.

resolv.conf names the gateway of the container's first network, where the egress daemon
relays queries to the host's resolvers from the host's namespace (so a host resolver on
127.0.0.53 works too). Containers on internal networks get an empty resolver list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from envkit.network import state
from envkit.network.egress import HOST_LOOPBACK, HOST_LOOPBACK_NAME
from envkit.network.state import Endpoint, NetworkInfo

HEADER = "# managed by envkit: rewritten on every network connect/disconnect\n"


def hosts_path(container: str) -> Path:
    return state.root() / "hosts" / container


def resolv_path(container: str) -> Path:
    return state.root() / "resolv" / container


def render_hosts(
    container: str, everyone: Sequence[Endpoint], networks: dict[str, NetworkInfo]
) -> str:
    """The hosts file of ``container`` given all endpoints and networks."""
    mine = [e for e in everyone if e.container == container]
    my_nets = {e.network for e in mine}
    lines = [HEADER, "127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n"]
    for ep in mine:
        lines += [f"{ip}\t{container}\n" for ip in _addresses(ep)]
    seen: set[tuple[str, str]] = set()
    for ep in everyone:
        if ep.container == container or ep.network not in my_nets:
            continue
        for name in (ep.container, *ep.aliases):
            for ip in _addresses(ep):
                if (ip, name) not in seen:
                    seen.add((ip, name))
                    lines.append(f"{ip}\t{name}\n")
    for ep in mine:  # aliases of this container, so it can call itself by them too
        for alias in ep.aliases:
            lines += [f"{ip}\t{alias}\n" for ip in _addresses(ep)]
    if any(networks[n].host_loopback for n in my_nets if n in networks):
        lines.append(f"{HOST_LOOPBACK}\t{HOST_LOOPBACK_NAME}\n")
    extra = dict.fromkeys(pair for ep in mine for pair in ep.extra_hosts)
    for name, address in extra:  # --add-host, in the order given, once each
        lines.append(f"{HOST_LOOPBACK if address == 'host-gateway' else address}\t{name}\n")
    return "".join(lines)


def _addresses(ep: Endpoint) -> list[str]:
    """The addresses a name of ``ep`` resolves to: IPv4 (A), then IPv6 (AAAA)."""
    return [ep.ip, ep.ip6] if ep.ip6 else [ep.ip]


def render_resolv(
    container: str, everyone: Sequence[Endpoint], networks: dict[str, NetworkInfo]
) -> str:
    """resolv.conf of ``container``: the gateway of its first non-internal network."""
    for ep in everyone:
        net = networks.get(ep.network)
        if ep.container == container and net is not None and not net.internal:
            return f"{HEADER}nameserver {net.gateway}\noptions ndots:0\n"
    return HEADER


def write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path`` keeping its inode (bind mounts of it see the new content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def refresh(containers: Sequence[str] | None = None) -> None:
    """Rewrite hosts and resolv.conf of ``containers`` (default: every attached one)."""
    everyone = state.endpoints()
    networks = {n.name: n for n in state.all_networks()}
    names = containers if containers is not None else sorted({e.container for e in everyone})
    for name in names:
        if not any(e.container == name for e in everyone):
            continue
        write_in_place(hosts_path(name), render_hosts(name, everyone, networks))
        write_in_place(resolv_path(name), render_resolv(name, everyone, networks))


def forget(container: str) -> None:
    """Remove the files of a container that left its last network."""
    hosts_path(container).unlink(missing_ok=True)
    resolv_path(container).unlink(missing_ok=True)
