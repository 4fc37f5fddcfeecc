"""Netlink work inside the holder's network namespace, through pyroute2.

Every netlink function here runs in a child that already joined the holder's namespaces
(see :func:`in_holder`); none of them shells out to ``ip``.

pyroute2 takes about 0.19 s to import, so it is imported only on the way to netlink
work: commands that never touch a link (``ps``, ``down`` of a stack without networks,
planning an attachment) never load it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

from envkit.network import ns
from envkit.network.ns import join_netns
from envkit.runtime import syscalls

if TYPE_CHECKING:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

T = TypeVar("T")

ENOENT_OR_ENODEV = (2, 19)
EEXIST = 17


def in_holder(holder_pid: int, fn: Callable[..., T], *args: Any) -> T:
    """:func:`envkit.network.ns.in_holder` for the netlink functions of this module.

    pyroute2 is imported here, in the calling process, before the fork: every helper
    forked afterwards (a holder's setup forks several, a long-lived supervisor one per
    container) inherits it instead of paying the import again.
    """
    load()
    return ns.in_holder(holder_pid, fn, *args)


def load() -> None:
    """Import pyroute2 in this process (a no-op once it is)."""
    import pyroute2  # noqa: F401


def _iproute() -> IPRoute:
    from pyroute2 import IPRoute

    return IPRoute()


def _netlink_error() -> type[NetlinkError]:
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError  # type: ignore[no-any-return]  # pyroute2 has no type hints


def init_holder() -> None:
    """Loopback up and routing between interfaces off: bridges stay islands."""
    with _iproute() as ip:
        ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("0\n")


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """Create bridge ``name`` holding ``gateway/prefixlen``, up (no-op if it exists)."""
    with _iproute() as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            ip.link("add", ifname=name, kind="bridge")
            found = ip.link_lookup(ifname=name)
        index = found[0]
        try:
            ip.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        except _netlink_error() as exc:
            if exc.code != EEXIST:
                raise
        ip.link("set", index=index, state="up")


def remove_link(name: str) -> None:
    """Delete link ``name`` (a bridge or a veth end); no-op if it is gone."""
    with _iproute() as ip:
        found = ip.link_lookup(ifname=name)
        if found:
            with suppress(_netlink_error()):
                ip.link("del", index=found[0])


def link_names() -> list[str]:
    """Names of every link in the holder's namespace."""
    with _iproute() as ip:
        return [str(link.get_attr("IFLA_IFNAME")) for link in ip.get_links()]


def _remove_in(netns_fd: int, ifname: str) -> None:
    """Delete ``ifname`` in the netns ``netns_fd``: the end of a pair whose holder died.

    The kernel destroys a dead namespace's interfaces asynchronously, so after a holder
    restart the container may still hold the old end for a moment.
    """
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        join_netns(f"/proc/self/fd/{netns_fd}")
        remove_link(ifname)
    finally:
        syscalls.setns(here, syscalls.CLONE_NEWNET)
        os.close(here)


def attach(
    bridge: str, veth: str, netns_fd: int, ifname: str, address: str, gateway: str, default: bool
) -> None:
    """A veth pair: ``veth`` on ``bridge`` here, ``ifname`` in the container's netns.

    The container end is created directly in its namespace (no rename dance, no clash of
    two containers' ``eth0`` here), then configured from inside it: address, up, and the
    default route through ``gateway`` when ``default`` (the container's first network).
    """
    iface = ipaddress.ip_interface(address)
    ensure_bridge(bridge, gateway, iface.network.prefixlen)
    _remove_in(netns_fd, ifname)
    with _iproute() as ip:
        remove_stale = ip.link_lookup(ifname=veth)
        if remove_stale:
            ip.link("del", index=remove_stale[0])
        ip.link("add", ifname=veth, kind="veth", peer={"ifname": ifname, "net_ns_fd": netns_fd})
        index = ip.link_lookup(ifname=veth)[0]
        ip.link("set", index=index, master=ip.link_lookup(ifname=bridge)[0], state="up")
    join_netns(f"/proc/self/fd/{netns_fd}")
    with _iproute() as ip:
        ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
        index = ip.link_lookup(ifname=ifname)[0]
        ip.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ip.link("set", index=index, state="up")
        if default:
            ip.route("replace", dst="0.0.0.0/0", gateway=gateway)
