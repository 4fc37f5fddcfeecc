"""Netlink work inside the holder's network namespace.

Every netlink function here runs in a child that already joined the holder's namespaces
(see :func:`in_holder`); none of them shells out to ``ip``. The requests go through
:mod:`envkit.network.netlink`, a few packed rtnetlink messages: nothing heavy is imported
on the way to a container's start.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable

from envkit.host import syscalls
from envkit.network import ns
from envkit.network.netlink import Route
from envkit.network.ns import join_netns

TYPE_CHECKING = False  # typing is not imported at run time (networked start-up)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


def in_holder(holder_pid: int, fn: Callable[..., T], *args: Any) -> T:
    """Run one of this module's netlink functions inside the holder's namespaces."""
    return ns.in_holder(holder_pid, fn, *args)


def init_holder() -> None:
    """Loopback up and routing between interfaces off: bridges stay islands."""
    with Route() as ip:
        ip.set_link(_index("lo"), up=True)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("0\n")


def _index(name: str) -> int:
    index = Route.index(name)
    if index is None:
        raise OSError(errno.ENODEV, f"no link named {name}")
    return index


def _ensure_bridge(ip: Route, name: str, gateway: str, prefixlen: int) -> int:
    index = ip.index(name)
    if index is None:
        ip.add_bridge(name)
        index = _index(name)
    try:
        ip.add_address(index, gateway, prefixlen)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    ip.set_link(index, up=True)
    return index


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """Create bridge ``name`` holding ``gateway/prefixlen``, up (no-op if it exists)."""
    with Route() as ip:
        _ensure_bridge(ip, name, gateway, prefixlen)


def remove_link(name: str) -> None:
    """Delete link ``name`` (a bridge or a veth end); no-op if it is gone."""
    with Route() as ip:
        index = ip.index(name)
        if index is not None:
            try:
                ip.delete_link(index)
            except OSError as exc:
                if exc.errno not in (errno.ENODEV, errno.ENOENT):
                    raise


def link_names() -> list[str]:
    """Names of every link in the holder's namespace."""
    return Route.names()


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
    _remove_in(netns_fd, ifname)
    with Route() as ip:
        master = _ensure_bridge(ip, bridge, gateway, iface.network.prefixlen)
        stale = ip.index(veth)
        if stale is not None:
            ip.delete_link(stale)
        ip.add_veth(veth, ifname, netns_fd)
        ip.set_link(_index(veth), up=True, master=master)
    join_netns(f"/proc/self/fd/{netns_fd}")
    with Route() as ip:
        ip.set_link(_index("lo"), up=True)
        index = _index(ifname)
        ip.add_address(index, str(iface.ip), iface.network.prefixlen)
        ip.set_link(index, up=True)
        if default:
            ip.replace_default_route(gateway)
