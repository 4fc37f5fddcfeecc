"""Extra ``/etc/hosts`` entries of a container (``docker run --add-host``, compose's
``extra_hosts``): a host name and an IP address, or ``host-gateway`` (the host)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

from envkit.errors import SpecError

#: The address docker's ``host-gateway`` stands for: the host, as the container sees it.
HOST_GATEWAY = "host-gateway"

_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")


def parse(field: str, value: object) -> tuple[tuple[str, str], ...]:
    """``["name:ip", "name=ip"]`` or ``{"name": "ip"}`` as sorted (name, address)
    pairs; a name may come more than once (each address is a line)."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        pairs = [(str(name), str(address)) for name, address in value.items()]
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for item in value:
            text = str(item)
            name, sep, address = (
                text.partition("=") if "=" in text.split(":", 1)[0] else text.partition(":")
            )
            if not sep:
                raise SpecError(field, "expected NAME:IP", value=text, hint="db:10.0.0.5")
            pairs.append((name, address))
    else:
        raise SpecError(field, "expected a list of NAME:IP or a mapping", value=value)
    return tuple(sorted(entry(field, name, address) for name, address in pairs))


def entry(field: str, name: str, address: str) -> tuple[str, str]:
    """One (name, address), checked: a host name, and an IP or ``host-gateway``."""
    if not _HOST_RE.match(name) or len(name) > 253:
        raise SpecError(field, "not a host name", value=name, hint="letters, digits, '.', '-'")
    address = address.strip().removeprefix("[").removesuffix("]")
    if address != HOST_GATEWAY:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise SpecError(
                field, f"{name}: not an IP address", value=address, hint="or host-gateway"
            ) from None
    return (name, address)
