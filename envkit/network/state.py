"""What the networking engine keeps on disk, under ``$ENVKIT_HOME/network``.

Layout::

    lock                          flock target: every change takes it exclusive
    holder.json                   pid + start time of the namespace holder and network daemon
    netd.sock                     the network daemon's control socket (JSON requests)
    networks/<name>.json          one network: subnet, gateway, bridge, flags, last address
    endpoints/<name>/<ctr>.json   one container on that network: address, aliases, veth
    forwarders/<ctr>.json         the published ports of a container (served by the
                                  network daemon named in it: pid + start time)
    leases/<name>.json            a holder lease: its owner's pid + start time (one per
                                  starting container, or per process between prepare()
                                  and its first connect)
    hosts/<ctr>, resolv/<ctr>     files the runtime bind-mounts as /etc/hosts, resolv.conf
    logs/                         stderr of the daemons

Files are replaced atomically (write to a temp file, rename). A process is named by its
pid *and* its start time, so a recycled pid is never mistaken for a dead holder.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from envkit import settings
from envkit.errors import EnvkitError, NetworkError
from envkit.records import Value
from envkit.store.locks import lock_for

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def root() -> Path:
    """``$ENVKIT_HOME/network``."""
    return Path(settings.private_dir("network"))


@contextmanager
def locked() -> Iterator[None]:
    """Hold the network state lock exclusive (reentrant in this thread)."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    with lock_for(base / "lock").exclusive():
        yield


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid network or container name, else :class:`NetworkError`."""
    if not NAME_RE.match(name):
        raise NetworkError(
            f"bad {kind} name {name!r}",
            hint="use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``; ``None`` when the file is missing or was cut short."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def sweep_temp_files() -> None:
    """Remove what :func:`write_json` left half-done: a writer killed between its temp
    file and the rename leaves ``.NAME.PID.tmp``, whose PID no longer runs (the kill -9
    suite found one under ``leases/`` after ``up``)."""
    folder = root()
    for path in folder.rglob(".*.tmp") if folder.is_dir() else ():
        pid_text = path.name.rsplit(".", 2)[-2]
        if pid_text.isdigit() and start_time(int(pid_text)) is None:
            path.unlink(missing_ok=True)


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot; ``None`` if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":  # a zombie holds no namespace and serves nothing
        return None
    return int(fields[19])


class Proc(Value):
    """A process we started, named by pid and start time."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> Proc:
        start = start_time(pid)
        if start is None:
            raise NetworkError(f"process {pid} exited while it was being set up")
        return cls(pid, start)

    def alive(self) -> bool:
        return self.pid > 0 and start_time(self.pid) == self.start

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL the process if it is still this one, and wait until it is gone.

        Waiting matters: its sockets (a published port) and namespaces are released only
        once it has exited, and callers promise exactly that.
        """
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return
        try:
            if not self.alive():
                return
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            with select.epoll() as poll:
                poll.register(fd, select.EPOLLIN)
                poll.poll(timeout)
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)


class NetworkInfo(Value):
    """One user network as stored on disk (what ``network inspect`` shows).

    ``host_loopback``: containers reach the host's 127.0.0.1 at :data:`HOST_LOOPBACK`
    (pasta's ``--map-host-loopback``); off by default. ``subnet6``/``gateway6``: the
    IPv6 side of a dual-stack network (``""`` on an IPv4-only one).
    """

    name: str
    subnet: str
    gateway: str
    bridge: str
    internal: bool = False
    host_loopback: bool = False
    last_ip: str = ""
    subnet6: str = ""
    gateway6: str = ""

    @property
    def ipv6(self) -> bool:
        """Whether the network is dual-stack."""
        return bool(self.subnet6)

    def with_last_ip(self, ip: str) -> NetworkInfo:
        """This network with ``ip`` as the last address handed out."""
        return NetworkInfo(**{**self.to_json(), "last_ip": ip})


class Endpoint(Value):
    """One container attached to one network.

    The container side is a ``pid`` (with its start time) or a ``netns`` path with its
    inode. ``ip6``: its IPv6 address on a dual-stack network, else ``""``.
    ``outlives_pid``: the container may outlive the process ``pid`` (a runtime's
    intermediate, which hands pid 1 over and exits).
    """

    network: str
    container: str
    ip: str
    ifname: str
    veth: str
    aliases: tuple[str, ...] = ()
    pid: int = 0
    pid_start: int = 0
    netns: str = ""
    netns_ino: int = 0
    order: int = 0
    ip6: str = ""
    outlives_pid: bool = False
    #: ``(name, address)`` lines of its hosts file (``--add-host``); ``host-gateway``
    #: stands for the host (its loopback, on a network that reaches it)
    extra_hosts: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["aliases"] = list(self.aliases)
        data["extra_hosts"] = [list(pair) for pair in self.extra_hosts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Endpoint:
        data = dict(data)
        data["aliases"] = tuple(data.get("aliases", ()))
        data["extra_hosts"] = tuple((str(n), str(a)) for n, a in data.get("extra_hosts", ()))
        return cls(**data)

    def alive(self) -> bool:
        """Whether the container's network namespace still exists.

        With ``outlives_pid``, the process named by ``pid`` may have exited while the
        container lives on (a runtime whose intermediate process hands pid 1 over and
        leaves): then the holder's end of the veth pair tells, since the kernel deletes
        a pair with the namespace of either end (asynchronously: a container killed a
        moment ago may still count as alive, until the next reap).
        """
        if self.pid:
            if Proc(self.pid, self.pid_start).alive():
                return True
            return (
                self.outlives_pid
                and self.veth in holder_links()
                and _container_may_run(self.container)
            )
        try:
            return os.stat(self.netns).st_ino == self.netns_ino
        except OSError:
            return False


def _container_may_run(name: str) -> bool:
    """Whether container ``name`` runs or is still starting, by its record: a start
    killed between the connect and the move of the veth's peer into the container
    leaves both ends in the holder, where the pair would live for ever."""
    from envkit.runtime import state as rs  # lazy: downward; keeps it out of the network daemon

    try:
        record = rs.find(name)
    except EnvkitError:
        return False
    if record.status == rs.CREATED:
        return rs.alive(record.supervisor, record.supervisor_start)
    return record.status == rs.RUNNING and rs.alive(record.pid, record.pid_start)


def holder_links() -> set[str]:
    """The names of the links in the live holder's network namespace (from its
    ``/proc/PID/net/dev``); empty when no holder runs."""
    d = load_daemons()
    if d is None or not d.holder.alive():
        return set()
    try:
        with open(f"/proc/{d.holder.pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return set()
    return {line.split(":", 1)[0].strip() for line in lines}


def network_path(name: str) -> Path:
    return root() / "networks" / f"{name}.json"


def load_network(name: str) -> NetworkInfo | None:
    data = read_json(network_path(name))
    return NetworkInfo(**data) if data is not None else None


def all_networks() -> list[NetworkInfo]:
    folder = root() / "networks"
    if not folder.is_dir():
        return []
    found = (load_network(p.stem) for p in sorted(folder.glob("*.json")))
    return [n for n in found if n is not None]


def save_network(net: NetworkInfo) -> None:
    write_json(network_path(net.name), net.to_json())


def endpoint_path(network: str, container: str) -> Path:
    return root() / "endpoints" / network / f"{container}.json"


def endpoints(network: str | None = None) -> list[Endpoint]:
    """Endpoints of one network (or of all), in the order they were connected."""
    base = root() / "endpoints"
    pattern = f"{network}/*.json" if network else "*/*.json"
    found = []
    for path in base.glob(pattern):
        data = read_json(path)
        if data is not None:
            found.append(Endpoint.from_json(data))
    return sorted(found, key=lambda e: (e.order, e.network, e.container))


def container_endpoints(container: str) -> list[Endpoint]:
    return [e for e in endpoints() if e.container == container]


def load_endpoint(network: str, container: str) -> Endpoint | None:
    data = read_json(endpoint_path(network, container))
    return Endpoint.from_json(data) if data is not None else None


def save_endpoint(ep: Endpoint) -> None:
    write_json(endpoint_path(ep.network, ep.container), ep.to_json())


def drop_endpoint(ep: Endpoint) -> None:
    endpoint_path(ep.network, ep.container).unlink(missing_ok=True)


class Daemons(Value):
    """The holder and the network daemon (:mod:`envkit.network.netd`: netlink, egress,
    published ports) of one ``$ENVKIT_HOME``."""

    holder: Proc
    netd: Proc | None = None


def holder_path() -> Path:
    return root() / "holder.json"


def load_daemons() -> Daemons | None:
    data = read_json(holder_path())
    if data is None:
        return None
    netd = Proc(**data["netd"]) if data.get("netd") else None
    return Daemons(Proc(**data["holder"]), netd)


def save_daemons(d: Daemons) -> None:
    write_json(
        holder_path(),
        {"holder": d.holder.to_json(), "netd": d.netd.to_json() if d.netd else None},
    )
