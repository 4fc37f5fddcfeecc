"""Published ports: host sockets relayed into a container's address in the holder.

The listening sockets are bound by the caller itself, in the host's namespace, before
anything is started: a port already taken fails right there, naming the port (and port
0 comes back as the port the kernel chose). They are then handed to a forwarder daemon
that joins the holder's namespaces, so every connection it opens towards the container
is made inside the holder, where the bridges are. The container's address is looked up
on each new connection, so a container that was reconnected with a new address keeps
its published ports.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import select
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

from envkit.network import ns, relay, state
from envkit.network.errors import NetworkError

TYPE_CHECKING = False  # typing is not imported at run time (networked start-up)
if TYPE_CHECKING:
    from typing import Any

#: Seconds a forwarder waits for the container to accept a connection.
CONNECT_TIMEOUT = 10.0
PORT_RE = re.compile(r"^(?:(?P<ip>[0-9.]+):)?(?P<host>\d+):(?P<ctr>\d+)(?:/(?P<proto>tcp|udp))?$")


class PortMapping(state.Value):
    """``host_ip:host_port`` on the host to ``container_port`` of the container."""

    __slots__ = ()
    FIELDS = ("host_port", "container_port", "protocol", "host_ip")
    host_port: int
    container_port: int
    protocol: str
    host_ip: str

    def __new__(
        cls, host_port: int, container_port: int, protocol: str = "tcp", host_ip: str = "127.0.0.1"
    ) -> PortMapping:
        return tuple.__new__(cls, (host_port, container_port, protocol, host_ip))

    @classmethod
    def parse(cls, text: str) -> PortMapping:
        """``[IP:]HOST:CONTAINER[/udp]`` as ``-p`` takes it (HOST 0: a free port)."""
        m = PORT_RE.match(text)
        if m is None:
            raise NetworkError(
                f"bad port mapping {text!r}", hint="use [IP:]HOST:CONTAINER[/tcp|udp], e.g. 8080:80"
            )
        mapping = cls(int(m["host"]), int(m["ctr"]), m["proto"] or "tcp", m["ip"] or "127.0.0.1")
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
            ipaddress.IPv4Address(self.host_ip)
        except ValueError:
            raise NetworkError(f"bad host address {self.host_ip!r} in a port mapping") from None

    def __str__(self) -> str:
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/{self.protocol}"


def bind(mapping: PortMapping) -> tuple[socket.socket, PortMapping]:
    """The listening socket for ``mapping`` and the mapping with the port actually bound."""
    mapping.check()
    kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((mapping.host_ip, mapping.host_port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
    except OSError as exc:
        sock.close()
        where = f"{mapping.host_ip}:{mapping.host_port}/{mapping.protocol}"
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
    """Bind every mapping now, in this process; :class:`NetworkError` names a port in use."""
    pairs: list[tuple[socket.socket, PortMapping]] = []
    try:
        for mapping in mappings:
            pairs.append(
                bind(mapping if isinstance(mapping, PortMapping) else PortMapping.parse(mapping))
            )
    except BaseException:
        Reservation(pairs).close()
        raise
    return Reservation(pairs)


def container_ip(container: str) -> str | None:
    """The address of ``container`` on its first network, read from disk."""
    eps = state.container_endpoints(container)
    return eps[0].ip if eps else None


def _serve(
    holder_pid: int,
    container: str,
    pairs: Sequence[tuple[socket.socket, PortMapping]],
    go: int,
    owner: int,
    ready: Callable[[], None],
) -> None:
    ns.join_userns(holder_pid, net=True, become_root=False)
    ready()
    # Clients wait in the listen backlog until the container is connected: then its
    # address is on disk for every connection accepted from here on.
    if not _go_ahead(go, owner):
        return
    os.close(go)

    def tcp_upstream(port: int) -> Callable[[socket.socket], socket.socket | None]:
        def connect(_client: socket.socket) -> socket.socket | None:
            ip = container_ip(container)
            return socket.create_connection((ip, port), timeout=CONNECT_TIMEOUT) if ip else None

        return connect

    def udp_upstream(port: int) -> Callable[[tuple[str, int]], socket.socket | None]:
        def connect(_client: tuple[str, int]) -> socket.socket | None:
            ip = container_ip(container)
            if ip is None:
                return None
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.connect((ip, port))
            return up

        return connect

    threads = []
    for sock, mapping in pairs:
        if mapping.protocol == "tcp":
            threads.append(
                relay.in_thread(relay.serve_tcp, sock, tcp_upstream(mapping.container_port))
            )
        else:
            threads.append(
                relay.in_thread(relay.serve_udp, sock, udp_upstream(mapping.container_port))
            )
    for thread in threads:
        thread.join()


def _go_ahead(go: int, owner: int) -> bool:
    """Whether the starting process (pid ``owner``) sent "go" on ``go``: ``False`` when
    it closed the pipe or died. Its death is watched too: a process it forked meanwhile
    (another container's, in a stack supervisor) may hold the pipe open long after."""
    try:
        pidfd = os.pidfd_open(owner)
    except ProcessLookupError:
        return False
    try:
        readable, _, _ = select.select([go, pidfd], [], [])
        return go in readable and os.read(go, 1) == b"g"
    finally:
        os.close(pidfd)


def _record_path(container: str) -> Path:
    return state.root() / "forwarders" / f"{container}.json"


def records(container: str) -> list[dict[str, Any]]:
    """The forwarders of ``container`` on disk: ``{"pid", "start", "ports"}`` each."""
    data = state.read_json(_record_path(container))
    return list(data["forwarders"]) if data else []


def all_containers() -> list[str]:
    folder = state.root() / "forwarders"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


class Forwarder:
    """A port forwarder started ahead of its container's connect (:func:`start`).

    It holds the host sockets and serves nothing until :meth:`open`, so it can come up
    on the other core while the container is being connected.
    """

    def __init__(
        self,
        container: str,
        holder_pid: int,
        starting: ns.Starting | None,
        go: int,
        bound: list[PortMapping],
    ) -> None:
        self.container = container
        self.holder_pid = holder_pid
        self.bound = bound
        self._starting = starting
        self._go = go

    def open(self) -> list[PortMapping]:
        """Let it serve and record it; the mappings as bound. Call with the state lock
        held, once the container is connected."""
        if self._starting is None:
            return []
        try:
            proc = state.Proc.of(self._starting.wait())
            os.write(self._go, b"g")
        except BaseException:
            self.cancel()
            raise
        os.close(self._go)
        self._starting = None
        entry = {**proc.to_json(), "ports": [m.to_json() for m in self.bound]}
        records_now = records(self.container)
        state.write_json(_record_path(self.container), {"forwarders": [*records_now, entry]})
        return self.bound

    def cancel(self) -> None:
        """Stop it unopened; its host ports are free again when this returns."""
        if self._starting is None:
            return
        starting, self._starting = self._starting, None
        os.close(self._go)  # an unopened forwarder exits at this end of file
        try:
            pid = starting.wait()
        except NetworkError:
            return
        with contextlib.suppress(NetworkError):
            state.Proc.of(pid).kill()


def start(
    container: str, holder_pid: int, mappings: Sequence[PortMapping] | Reservation
) -> Forwarder:
    """Bind ``mappings`` (or take over a :class:`Reservation`'s sockets) and start their
    forwarder, waiting for :meth:`Forwarder.open`."""
    reservation = mappings if isinstance(mappings, Reservation) else reserve(mappings)
    pairs, reservation.pairs = reservation.pairs, []
    bound = [m for _, m in pairs]
    if not pairs:
        return Forwarder(container, holder_pid, None, -1, [])
    go_r, go_w = os.pipe()
    owner = os.getpid()
    try:
        keep = (*(s.fileno() for s, _ in pairs), go_r)
        starting = ns.spawn_daemon(
            f"ports-{container}",
            lambda ready: _serve(holder_pid, container, pairs, go_r, owner, ready),
            keep,
        )
    except BaseException:
        os.close(go_w)
        raise
    finally:
        os.close(go_r)
        for sock, _ in pairs:
            sock.close()
    return Forwarder(container, holder_pid, starting, go_w, bound)


def publish(
    container: str, holder_pid: int, mappings: Sequence[PortMapping] | Reservation
) -> list[PortMapping]:
    """Bind ``mappings`` (or take over a :class:`Reservation`'s sockets) and start their
    forwarder; the mappings as bound.

    Call with the state lock held and ``container`` attached to a network.
    """
    return start(container, holder_pid, mappings).open()


def published(container: str) -> list[PortMapping]:
    """The ports of ``container`` served by a live forwarder."""
    found = []
    for entry in records(container):
        if state.Proc(entry["pid"], entry["start"]).alive():
            found += [PortMapping(**m) for m in entry["ports"]]
    return found


def unpublish(container: str) -> None:
    """Stop every forwarder of ``container`` (their listening sockets close with them)."""
    for entry in records(container):
        state.Proc(entry["pid"], entry["start"]).kill()
    _record_path(container).unlink(missing_ok=True)


def restart(holder_pid: int) -> None:
    """Re-publish every container's ports through a new holder, on the same host ports.

    A forwarder lives in the network namespace of the holder it was started with; after
    that holder died, its connections lead nowhere.
    """
    for container in all_containers():
        bound = published(container)
        unpublish(container)
        if bound:
            publish(container, holder_pid, bound)


def prune_dead(container: str) -> None:
    """Forget forwarders of ``container`` that are no longer running."""
    alive = [e for e in records(container) if state.Proc(e["pid"], e["start"]).alive()]
    if alive:
        state.write_json(_record_path(container), {"forwarders": alive})
    else:
        _record_path(container).unlink(missing_ok=True)
