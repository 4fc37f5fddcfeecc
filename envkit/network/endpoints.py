"""Containers on networks: connect, disconnect, and re-attaching after a holder restart."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import NetworkError
from envkit.host import syscalls
from envkit.network import control, holder, ipam, names, networks, ns, ports, state
from envkit.network.state import Endpoint
from envkit.oci.digest import hex_of, sha256_bytes  # the interpreter's SHA-256: no OpenSSL loaded


def veth_name(network: str, container: str) -> str:
    digest = hex_of(sha256_bytes(f"{network}\0{container}".encode()))
    return "vek" + digest[:12]


def _target(target: int | str) -> tuple[str, dict[str, int | str]]:
    """The netns path of ``target`` (a pid or a path) and how to recognise it later."""
    if isinstance(target, int):
        return ns.ns_path(target, "net"), {"pid": target, "pid_start": state.Proc.of(target).start}
    try:
        return target, {"netns": target, "netns_ino": os.stat(target).st_ino}
    except OSError as exc:
        raise NetworkError(f"network namespace {target}: {exc.strerror}") from None


def _attach(ep: Endpoint, default: bool) -> None:
    """Ask the network daemon to make ``ep``'s veth pair (the container's netns goes
    along as a descriptor)."""
    net = networks.get(ep.network)
    path = ns.ns_path(ep.pid, "net") if ep.pid else ep.netns
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(
            f"network namespace of container {ep.container!r} ({path}): {exc.strerror}"
        ) from None
    spec = {
        "bridge": net.bridge,
        "bridge_spec": holder.bridge_spec(net),
        "veth": ep.veth,
        "ifname": ep.ifname,
        "address": ep.ip,
        "prefixlen": ipaddress.ip_network(net.subnet).prefixlen,
        "gateway": net.gateway,
        "default": default,
    }
    if ep.ip6:
        spec["address6"] = ep.ip6
        spec["prefixlen6"] = ipaddress.ip_network(net.subnet6).prefixlen
        spec["gateway6"] = net.gateway6
    try:
        control.call("attach", spec, [fd])
    except NetworkError as exc:
        raise NetworkError(
            f"connecting container {ep.container!r} to network {ep.network!r}: {exc.message}",
            hint=exc.hint,
        ) from None
    finally:
        os.close(fd)


def connect(
    network: str,
    container: str,
    target: int | str,
    aliases: Sequence[str] = (),
    *,
    outlives_pid: bool = False,
    extra_hosts: Sequence[tuple[str, str]] = (),
) -> Endpoint:
    """Attach ``container`` to ``network``; its endpoint (address, interface name).

    ``target`` is the container's network namespace: the pid of a process in it, or the
    path of a namespace file. The namespace must belong to the holder's user namespace
    (see :func:`envkit.network.prepare`), so the holder's side can move a veth into it.
    The container's first network gives it its default route. ``outlives_pid``: the
    process ``target`` may exit before the container does (a runtime's intermediate);
    the container then counts as alive while its veth exists.
    """
    state.check_name("container", container)
    for alias in aliases:
        state.check_name("alias", alias)
    with state.locked():
        net = networks.get(network)
        old = state.load_endpoint(network, container)
        if old is not None:
            if old.alive():
                raise NetworkError(
                    f"container {container!r} is already connected to network {network!r}",
                    hint="disconnect it first",
                )
            state.drop_endpoint(old)
        reap_locked()
        ensure_running()
        _, ident = _target(target)
        release_lease(process_lease())
        mine = state.container_endpoints(container)
        taken = {e.ifname for e in mine}
        ifname = next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)
        ip = ipam.allocate(net.subnet, [e.ip for e in state.endpoints(network)], net.last_ip)
        order = max((e.order for e in state.endpoints()), default=0) + 1
        ip6 = ipam.address6(net.subnet, net.subnet6, ip) if net.subnet6 else ""
        ep = Endpoint(
            network=network,
            container=container,
            ip=ip,
            ifname=ifname,
            veth=veth_name(network, container),
            aliases=tuple(aliases),
            order=order,
            ip6=ip6,
            outlives_pid=outlives_pid and isinstance(target, int),
            extra_hosts=tuple(extra_hosts),
            **ident,  # type: ignore[arg-type]
        )
        _attach(ep, default=not mine)
        state.save_endpoint(ep)
        state.save_network(net.with_last_ip(ip))
        names.refresh(_neighbours(network, container))
        return ep


def _neighbours(network: str, container: str) -> list[str]:
    """``container`` and every container sharing a network with it."""
    nets = {e.network for e in state.container_endpoints(container)} | {network}
    return sorted({e.container for e in state.endpoints() if e.network in nets} | {container})


def disconnect(network: str, container: str) -> None:
    """Detach ``container`` from ``network`` (its veth goes, its address is released)."""
    with state.locked():
        ep = state.load_endpoint(network, container)
        if ep is None:
            raise NetworkError(f"container {container!r} is not connected to network {network!r}")
        _detach(ep)
        stop_if_unused()


def _detach(ep: Endpoint) -> None:
    affected = _neighbours(ep.network, ep.container)
    if holder.serving() is not None:
        control.call("remove_link", {"name": ep.veth})
    state.drop_endpoint(ep)
    names.refresh(affected)
    if not state.container_endpoints(ep.container):
        ports.unpublish(ep.container)
        names.forget(ep.container)


def ensure_running() -> state.Daemons:
    """The daemons, (re)started if needed, with every live container re-attached.

    Call with the state lock held, after :func:`reap_locked`.
    """
    if holder.current() is not None:
        d, _, new_netd = holder.ensure()
        if new_netd:  # the old daemon died: its published ports went with it
            ports.restart()
        return d
    adopt = _userns_of_a_survivor()
    try:
        d, _, _ = holder.ensure(adopt)
    finally:
        if adopt is not None:
            os.close(adopt)
    ports.restart()
    first: set[str] = set()
    for ep in state.endpoints():
        try:
            _attach(ep, default=ep.container not in first)
            first.add(ep.container)
        except NetworkError as exc:
            import logging  # only on this rare path: logging costs ~3 ms to import

            logging.getLogger(__name__).warning(
                "dropping %s from network %s: %s", ep.container, ep.network, exc
            )
            state.drop_endpoint(ep)
    names.refresh()
    return d


def _userns_of_a_survivor() -> int | None:
    for ep in state.endpoints():
        path = ns.ns_path(ep.pid, "net") if ep.pid else ep.netns
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            return syscalls.owner_userns(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
    return None


def _lease_path(lease: str) -> Path:
    return state.root() / "leases" / f"{lease}.json"


def process_lease() -> str:
    """The lease :func:`envkit.network.prepare` takes for the calling process by default;
    the process's next :func:`connect` drops it."""
    return str(os.getpid())


def lease_name() -> str:
    """A new lease name of the calling process, unique to this call."""
    return f"{os.getpid()}-{os.urandom(6).hex()}"


def take_lease(lease: str) -> None:
    """Keep the holder up until lease ``lease`` is released or the calling process dies.

    Between :func:`envkit.network.prepare` and the first connect, a container sits in
    the holder's user namespace with nothing on disk saying so; without a lease another
    command's disconnect could stop the holder under it. Leases are counted: each one is
    a file naming its owner (pid and start time), the holder stops only when no live one
    is left, and those of dead owners are dropped. A process that starts and stops
    several containers at once (a stack supervisor) takes one per container
    (:func:`lease_name`). Call with the state lock held.
    """
    me = state.Proc.of(os.getpid())
    state.write_json(_lease_path(lease), {"pid": me.pid, "start": me.start})


def release_lease(lease: str) -> None:
    """Drop lease ``lease`` (idempotent); the holder is not stopped here."""
    _lease_path(lease).unlink(missing_ok=True)


def release_own_leases() -> None:
    """Drop every lease the calling process holds, before it ``exec``s with its
    containers connected (a stack supervisor entering its hold phase): the exec loses
    the lease names, while the same pid and start time would keep the leases alive
    until the process ends, and with them the holder after its last container."""
    folder = state.root() / "leases"
    if not folder.is_dir():
        return
    with state.locked():
        for path in folder.glob(f"{os.getpid()}-*.json"):
            path.unlink(missing_ok=True)
        _lease_path(process_lease()).unlink(missing_ok=True)


def _live_leases() -> bool:
    folder = state.root() / "leases"
    alive = False
    for path in folder.glob("*.json") if folder.is_dir() else ():
        data = state.read_json(path)
        if data is not None and state.Proc(data["pid"], data["start"]).alive():
            alive = True
        else:
            path.unlink(missing_ok=True)
    return alive


def reap_locked() -> None:
    """Forget what died: endpoints of gone containers, their forwarders, a dead holder,
    the temp files of killed writers."""
    state.sweep_temp_files()
    for ep in state.endpoints():
        if not ep.alive():
            _detach(ep)
    # Ports of containers still attached stay on disk even when their daemon died: the
    # next ensure_running() publishes them again through a new one.
    for container in ports.all_containers():
        if not state.container_endpoints(container):
            ports.unpublish(container)
    d = state.load_daemons()
    if d is not None and not d.holder.alive():
        holder.stop_daemons(d)


def reap() -> None:
    """Clean up after crashed or killed envkit processes and containers (idempotent)."""
    with state.locked():
        reap_locked()
        if state.endpoints():
            ensure_running()
        else:
            stop_if_unused()


def teardown() -> None:
    """Remove everything running: forwarders, veths, bridges, daemons (networks stay)."""
    with state.locked():
        for container in ports.all_containers():
            ports.unpublish(container)
        for ep in state.endpoints():
            state.drop_endpoint(ep)
            names.forget(ep.container)
        d = state.load_daemons()
        if d is not None:
            holder.stop_daemons(d)


def stop_if_unused() -> None:
    """Stop the holder and network daemon when no container and no published port needs
    them."""
    if state.endpoints() or any(ports.records(c) for c in ports.all_containers()):
        return
    if _live_leases():
        return
    d = state.load_daemons()
    if d is not None:
        holder.stop_daemons(d)
