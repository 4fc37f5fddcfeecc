"""One runtime container on networks: the glue :mod:`envkit.container` uses.

The order is the one docs/dev/network.md describes: the host ports are bound first
(:meth:`Attachment.plan`, before anything exists, so a port in use fails at once); the
process that starts the container takes the holder's user namespace
(:meth:`Attachment.userns`) for the runtime to *join*; the runtime calls the attachment
with the monitor's pid once the container's network namespace exists, which connects
it and hands its published ports to the network daemon; the managed hosts file and
resolv.conf are then bind-mounted (:meth:`Attachment.mounts`).
:meth:`Attachment.release` undoes all of it when the container exits, and
:func:`envkit.network.reap` does when nobody could.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from envkit.errors import NetworkError
from envkit.network import containers, endpoints, names, networks, ports, state
from envkit.network.ports import PortMapping
from envkit.runtime.config import BindMount

#: The network of ``run -p`` without ``--network``, as podman's ``podman`` (docker's
#: ``bridge``): created on first use.
DEFAULT_NETWORK = "envkit"
#: ``--network none``: loopback only (the default without ``-p``).
NONE = "none"

PortsSpec = Mapping[int, int] | Sequence[PortMapping | str]


def parse_ports(spec: PortsSpec) -> list[PortMapping]:
    """``{host: container}`` (as ``Service(ports=)``) or ``-p`` strings, parsed."""
    if isinstance(spec, Mapping):
        found = [PortMapping(int(h), int(c)) for h, c in spec.items()]
        for mapping in found:
            mapping.check()
        return found
    return [m if isinstance(m, PortMapping) else PortMapping.parse(m) for m in spec]


def choose_networks(requested: Sequence[str], publishing: bool) -> list[str]:
    """The networks a container joins: ``requested``; ``[]`` for none; with published
    ports and nothing requested, :data:`DEFAULT_NETWORK`."""
    chosen = [n for n in requested if n]
    if NONE in chosen:
        if len(chosen) > 1 or publishing:
            raise NetworkError(
                "--network none cannot be combined with other networks or published ports",
                hint="drop --network none, or drop -p and the other --network options",
            )
        return []
    if not chosen and publishing:
        return [DEFAULT_NETWORK]
    return list(dict.fromkeys(chosen))


def ensure_network(name: str) -> None:
    """Network ``name`` must exist; :data:`DEFAULT_NETWORK` is created when missing."""
    if state.load_network(name) is not None:
        return
    if name != DEFAULT_NETWORK:
        networks.get(name)  # raises, naming the network and how to create it
    with contextlib.suppress(NetworkError):  # another command created it meanwhile
        networks.create(name)
    networks.get(name)


class Attachment:
    """Container ``container`` on ``networks`` (the first gives the default route)."""

    def __init__(
        self,
        container: str,
        networks: tuple[str, ...],
        aliases: tuple[str, ...] = (),
        reservation: ports.Reservation | None = None,
        extra_hosts: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.container = container
        self.networks = networks
        self.aliases = aliases
        self.extra_hosts = extra_hosts
        self.reservation = reservation
        #: The ports as published, once connected (port 0 resolved).
        self.published: list[PortMapping] = []
        self._connected: list[str] = []
        #: The holder lease taken by :meth:`userns`, dropped by :meth:`release`.
        self._lease: str | None = None
        #: The holder's pid as :meth:`userns` found it.
        self._holder: int | None = None

    def __repr__(self) -> str:
        return f"Attachment({self.container!r}, networks={self.networks!r})"

    @classmethod
    def plan(
        cls,
        container: str,
        requested: Sequence[str],
        aliases: Sequence[str] = (),
        published: PortsSpec = (),
        extra_hosts: Sequence[tuple[str, str]] = (),
        hostname: str | None = None,
    ) -> Attachment | None:
        """Check names, create the default network if needed, bind the host ports.

        ``None`` when the container gets no network (loopback only). Raises
        :class:`NetworkError` (a port in use, an unknown network, ``host-gateway`` on
        networks that do not reach the host) before anything starts.
        """
        mappings = parse_ports(published)
        chosen = choose_networks(requested, bool(mappings))
        if not chosen:
            if aliases or extra_hosts:
                flag = "--add-host" if extra_hosts else "--network-alias"
                raise NetworkError(
                    f"{flag} needs a network",
                    hint="add --network NAME (envkit network create NAME makes one)",
                )
            return None
        state.check_name("container", container)
        for alias in aliases:
            state.check_name("alias", alias)
        # As docker, the container's hostname resolves too (when it is a valid name).
        named = [*aliases, *([hostname] if hostname and state.NAME_RE.match(hostname) else [])]
        aliases = [a for a in dict.fromkeys(named) if a != container]
        for name in chosen:
            ensure_network(name)
        if any(address == "host-gateway" for _, address in extra_hosts):
            _check_host_gateway(chosen)
        reservation = ports.reserve(mappings) if mappings else None
        return cls(container, tuple(chosen), tuple(aliases), reservation, tuple(extra_hosts))

    def userns(self) -> str:
        """The holder's user namespace for the runtime to join (starts the holder).

        Call it in the process that then starts the container: the holder stays up,
        whatever other containers come and go, until :meth:`release`.
        """
        if self._lease is None:
            self._lease = endpoints.lease_name()
        self._holder = containers.prepare(self._lease)
        return f"/proc/{self._holder}/ns/user"

    def mounts(self) -> list[BindMount]:
        """The managed /etc/hosts and /etc/resolv.conf (they exist once connected)."""
        return [
            BindMount(str(names.hosts_path(self.container)), "/etc/hosts", readonly=True),
            BindMount(str(names.resolv_path(self.container)), "/etc/resolv.conf", readonly=True),
        ]

    def __call__(self, pid: int) -> None:
        """Connect the container whose network namespace ``pid`` is in; publish its ports.

        Each connect is one request to the network daemon (it makes the veth pair and
        configures the container's side); the host sockets of the published ports then
        go to the same daemon, which serves them from then on.
        """
        for network in self.networks:
            # ``pid`` is the runtime's intermediate, which exits once pid 1 runs.
            endpoints.connect(
                network,
                self.container,
                pid,
                self.aliases,
                outlives_pid=True,
                extra_hosts=self.extra_hosts,
            )
            self._connected.append(network)
        if self.reservation is not None:
            self.published = containers.publish(self.container, self.reservation)

    def close_ports(self) -> None:
        """Give back host ports not handed to the network daemon (a process that will
        not start the container itself, like the caller of a detached run)."""
        if self.reservation is not None:
            self.reservation.close()

    def release(self) -> None:
        """Undo everything after the container exited (or failed to start); idempotent."""
        self.close_ports()
        with state.locked():
            if self._lease is not None:
                endpoints.release_lease(self._lease)
                self._lease = None
            for ep in state.container_endpoints(self.container):
                if ep.network in self.networks:
                    with contextlib.suppress(NetworkError):
                        endpoints.disconnect(ep.network, self.container)
            self._connected.clear()
            if not state.container_endpoints(self.container):
                ports.unpublish(self.container)
            endpoints.stop_if_unused()


def _check_host_gateway(chosen: Sequence[str]) -> None:
    """``host-gateway`` is the host's loopback, which only a network made with
    ``host_loopback`` reaches: refuse it on others (the name would lead nowhere)."""
    if not any(
        (net := state.load_network(name)) is not None and net.host_loopback for name in chosen
    ):
        raise NetworkError(
            "host-gateway (--add-host NAME:host-gateway) needs a network that reaches the "
            f"host; {', '.join(chosen)} does not",
            hint="envkit network create --host-loopback NAME, then --network NAME",
        )
