"""Netlink work of the network daemon, through pyroute2: bridges, veth pairs, addresses,
routes, moving links between namespaces, link state.

Only the netlink worker (:mod:`envkit.network.netlink_worker`, a child of the network
daemon that lives while there is netlink work) imports this module: pyroute2's import
costs 0.1-0.2 s and ~10 MB, paid neither by a command nor by the daemon for the life of
the home. A netlink socket belongs to the network namespace of the thread that made it,
and pyroute2 (0.9) makes one socket and event loop per thread that uses an ``IPRoute``.
So the holder's side is served by one thread that joined the holder's network namespace
and lives as long as the worker (requests reach it through a queue, one at a time); a
container's side is configured by a short-lived thread that joins the container's
namespace (``setns`` of a network namespace moves one thread).

Errors are :class:`~envkit.errors.NetworkError` naming the object and carrying the
kernel's own words (its extended ACK message where it gives one, else strerror).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2.iproute.linux import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from envkit.errors import NetworkError
from envkit.host import syscalls

T = TypeVar("T")

#: ``IFA_F_NODAD``: an IPv6 address usable at once (no duplicate address detection,
#: which would hold it "tentative" for a second; envkit hands out unique addresses).
IFA_F_NODAD = 0x02


def kernel_error(what: str, exc: NetlinkError) -> NetworkError:
    """``what`` failed, in the kernel's words: ``"creating veth X: File exists (errno 17)"``."""
    code = exc.code
    text = exc.args[1] if len(exc.args) > 1 and exc.args[1] else os.strerror(code)
    return NetworkError(f"{what}: {text} (errno {code})")


def in_netns(netns_fd: int, fn: Callable[[], T]) -> T:
    """``fn()`` in a thread that joined the network namespace ``netns_fd``; its result."""
    box: list[Any] = []

    def run() -> None:
        try:
            syscalls.setns(netns_fd, syscalls.CLONE_NEWNET)
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=run, name="envkit-netns")
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _route() -> IPRoute:
    return IPRoute(ext_ack=True, strict_check=True)


def _index(ip: IPRoute, name: str) -> int | None:
    found = ip.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _add_address(ip: IPRoute, index: int, address: str, prefixlen: int, what: str) -> None:
    """Add ``address/prefixlen`` to link ``index``; present already is fine."""
    v6 = ipaddress.ip_address(address).version == 6
    try:
        if v6:
            ip.addr("add", index=index, address=address, prefixlen=prefixlen, flags=IFA_F_NODAD)
        else:
            ip.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise kernel_error(f"adding address {address}/{prefixlen} to {what}", exc) from None


def _delete(ip: IPRoute, name: str, what: str) -> None:
    index = _index(ip, name)
    if index is None:
        return
    try:
        ip.link("del", index=index)
    except NetlinkError as exc:
        if exc.code not in (errno.ENODEV, errno.ENOENT):
            raise kernel_error(f"deleting {what} {name}", exc) from None


class Holder:
    """Netlink in the holder's network namespace (where the bridges are), done by one
    worker thread that lives there: one rtnetlink socket, one request at a time."""

    def __init__(self, netns: int) -> None:
        """``netns``: an fd of the holder's network namespace (kept open, not closed)."""
        self.netns = netns
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event]]
        self._jobs = queue.SimpleQueue()
        started = threading.Event()
        failed: list[BaseException] = []
        thread = threading.Thread(
            target=self._work, args=(started, failed), daemon=True, name="envkit-netlink"
        )
        thread.start()
        started.wait()
        if failed:
            raise NetworkError(f"netlink in the holder's namespace: {failed[0]}")

    def _work(self, started: threading.Event, failed: list[BaseException]) -> None:
        try:
            syscalls.setns(self.netns, syscalls.CLONE_NEWNET)
            self.ip: IPRoute = _route()
            self.ip.link_lookup(ifname="lo")  # the socket is made now, here
        except BaseException as exc:
            failed.append(exc)
            started.set()
            return
        started.set()
        while True:
            fn, box, done = self._jobs.get()
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

    def _run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the worker thread; its result (or its exception, raised here)."""
        box: list[Any] = []
        done = threading.Event()
        self._jobs.put((fn, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def setup(self, bridges: list[dict[str, Any]]) -> None:
        """Loopback up and every bridge there (a new holder, or one rebuilt)."""

        def run() -> None:
            lo = _index(self.ip, "lo")
            if lo is not None:
                try:
                    self.ip.link("set", index=lo, state="up")
                except NetlinkError as exc:
                    raise kernel_error("setting loopback up in the holder", exc) from None
            for bridge in bridges:
                self._bridge(**bridge)

        self._run(run)

    def bridge(self, **bridge: Any) -> None:
        """Bridge ``name`` with its gateway address(es), up; no-op if it is there."""
        self._run(lambda: self._bridge(**bridge))

    def _bridge(
        self, name: str, gateway: str, prefixlen: int, gateway6: str = "", prefixlen6: int = 0
    ) -> int:
        index = _index(self.ip, name)
        if index is None:
            try:
                self.ip.link("add", ifname=name, kind="bridge")
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise kernel_error(f"creating bridge {name}", exc) from None
            index = _index(self.ip, name)
            if index is None:  # pragma: no cover - the kernel said it made it
                raise NetworkError(f"bridge {name} vanished right after it was created")
        _add_address(self.ip, index, gateway, prefixlen, f"bridge {name}")
        if gateway6:
            _add_address(self.ip, index, gateway6, prefixlen6, f"bridge {name}")
        try:
            self.ip.link("set", index=index, state="up")
        except NetlinkError as exc:
            raise kernel_error(f"setting bridge {name} up", exc) from None
        return index

    def remove_link(self, name: str) -> None:
        """Delete link ``name`` (a bridge or a veth end); no-op if it is gone."""
        self._run(lambda: _delete(self.ip, name, "link"))

    def link_names(self) -> list[str]:
        """Names of every link in the holder's namespace."""
        return self._run(lambda: [link.get("IFLA_IFNAME") for link in self.ip.get_links()])

    def attach(self, netns_fd: int, spec: dict[str, Any]) -> None:
        """A veth pair: ``veth`` on ``bridge`` here, ``ifname`` in the container's netns
        (created there directly: no rename, no clash of two containers' ``eth0`` here),
        configured from inside it: addresses, up, default routes when ``default``."""
        ifname = spec["ifname"]
        # After a holder restart the container may still hold the old end for a moment
        # (a dead namespace's interfaces go asynchronously).
        in_netns(netns_fd, lambda: _drop_stale(ifname))
        self._run(lambda: self._veth(netns_fd, spec))
        in_netns(netns_fd, lambda: _configure_inside(spec))

    def _veth(self, netns_fd: int, spec: dict[str, Any]) -> None:
        """In the worker: the bridge (made if missing), the pair, the holder end on it."""
        bridge, veth, ifname = spec["bridge"], spec["veth"], spec["ifname"]
        master = self._bridge(**spec["bridge_spec"])
        _delete(self.ip, veth, "veth")
        try:
            self.ip.link(
                "add",
                ifname=veth,
                kind="veth",
                peer={"ifname": ifname, "net_ns_fd": netns_fd},
            )
        except NetlinkError as exc:
            raise kernel_error(
                f"creating veth {veth} (peer {ifname} in the container) on bridge {bridge}",
                exc,
            ) from None
        index = _index(self.ip, veth)
        if index is None:  # pragma: no cover
            raise NetworkError(f"veth {veth} vanished right after it was created")
        try:
            self.ip.link("set", index=index, master=master, state="up")
        except NetlinkError as exc:
            raise kernel_error(f"enslaving veth {veth} to bridge {bridge}", exc) from None


def _drop_stale(ifname: str) -> None:
    with _route() as ip:
        _delete(ip, ifname, "stale interface")


def _configure_inside(spec: dict[str, Any]) -> None:
    """Inside the container's namespace: loopback up, the addresses, link up, routes."""
    ifname = spec["ifname"]
    with _route() as ip:
        lo = _index(ip, "lo")
        if lo is not None:
            ip.link("set", index=lo, state="up")
        index = _index(ip, ifname)
        if index is None:
            raise NetworkError(f"interface {ifname} did not arrive in the container")
        what = f"interface {ifname} of the container"
        _add_address(ip, index, spec["address"], spec["prefixlen"], what)
        if spec.get("address6"):
            _add_address(ip, index, spec["address6"], spec["prefixlen6"], what)
        try:
            ip.link("set", index=index, state="up")
        except NetlinkError as exc:
            raise kernel_error(f"setting {what} up", exc) from None
        if not spec["default"]:
            return
        routes = [("0.0.0.0/0", spec["gateway"], 2)]
        if spec.get("gateway6"):
            routes.append(("::/0", spec["gateway6"], 10))
        for dst, gateway, family in routes:
            try:
                ip.route("replace", dst=dst, gateway=gateway, family=family, oif=index)
            except NetlinkError as exc:
                raise kernel_error(f"default route via {gateway} on {what}", exc) from None
