"""Published ports: ``{8000: 5000}``, ``["8000:5000", "127.0.0.1:53:53/udp"]``."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from envkit.errors import SpecError
from envkit.records import Value
from envkit.spec import validate

#: Host address a port is published on when none is given: loopback, unlike docker's
#: 0.0.0.0, so a development stack is not reachable from the network by accident.
DEFAULT_HOST_IP = "127.0.0.1"
PROTOCOLS = ("tcp", "udp", "sctp")


class PortMapping(Value, order=True):
    """Host ``host_ip:host_port`` forwards to ``container_port`` (host port 0: any free)."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = DEFAULT_HOST_IP

    def __str__(self) -> str:
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return f"{ip}:{self.host_port}:{self.container_port}/{self.protocol}"

    def conflicts_with(self, other: PortMapping) -> bool:
        """Whether both cannot be bound at once (same fixed port, protocol, overlapping IP)."""
        if self.host_port == 0 or (self.host_port, self.protocol) != (
            other.host_port,
            other.protocol,
        ):
            return False
        ips = {self.host_ip, other.host_ip}
        return len(ips) == 1 or bool(ips & {"0.0.0.0", "::"})


def parse_ports(field: str, value: object) -> tuple[PortMapping, ...]:
    """Ports as ``{host: container}`` or a list of compose-style strings, sorted."""
    found: list[PortMapping] = []
    if isinstance(value, Mapping):
        for host, container in value.items():
            found.append(_from_pair(field, host, container))
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for item in value:
            found.append(_from_item(field, item))
    else:
        raise SpecError(
            field,
            "expected a mapping {host: container} or a list of strings",
            value=value,
            hint='e.g. {8000: 5000} or ["127.0.0.1:8000:5000/tcp"]',
        )
    out = sorted(set(found))
    for i, a in enumerate(out):
        if any(a.conflicts_with(b) for b in out[i + 1 :]):
            raise SpecError(field, f"host port {a.host_port}/{a.protocol} is published twice")
    return tuple(out)


def _from_pair(field: str, host: object, container: object) -> PortMapping:
    ip = DEFAULT_HOST_IP
    if isinstance(host, str) and ":" in host:
        ip_text, _, host = host.rpartition(":")
        ip = _ip(field, ip_text)
    host_port = validate.port(f"{field}[{host!r}]", host, allow_zero=True)
    proto = "tcp"
    if isinstance(container, str) and "/" in container:
        container, proto = container.split("/", 1)
    return PortMapping(
        host_port,
        validate.port(f"{field}[{host!r}]", container),
        validate.choice(f"{field}[{host!r}]", proto, PROTOCOLS),
        ip,
    )


def _from_item(field: str, item: object) -> PortMapping:
    if isinstance(item, PortMapping):
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        return PortMapping(0, validate.port(field, item))
    if not isinstance(item, str):
        raise SpecError(field, "expected a port string like '8000:5000'", value=item)
    text, proto = item, "tcp"
    if "/" in text:
        text, proto = text.split("/", 1)
    ip = DEFAULT_HOST_IP
    if text.startswith("["):  # [::1]:8000:5000
        ip_text, sep, text = text[1:].partition("]:")
        if not sep:
            raise SpecError(field, "unclosed '[' in an IPv6 address", value=item)
        ip = _ip(field, ip_text)
    parts = text.split(":")
    if len(parts) == 3 and not item.startswith("["):
        ip = _ip(field, parts.pop(0))
    if len(parts) == 1:
        parts.insert(0, "0")
    if len(parts) != 2:
        raise SpecError(
            field,
            "expected [IP:]HOST:CONTAINER[/PROTO]",
            value=item,
            hint='e.g. "8000:5000" or "127.0.0.1:5353:53/udp"',
        )
    return PortMapping(
        validate.port(field, parts[0], allow_zero=True),
        validate.port(field, parts[1]),
        validate.choice(field, proto, PROTOCOLS),
        ip,
    )


def _ip(field: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise SpecError(field, "invalid host IP address", value=text) from None
