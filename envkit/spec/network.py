"""``Network``: a network the services of a stack share."""

from __future__ import annotations

import ipaddress
from typing import Any, Never

from envkit.errors import SpecError
from envkit.records import Frozen
from envkit.spec import validate
from envkit.spec.canonical import SpecObject, versioned

#: The network services join when they name none (as in compose).
DEFAULT_NETWORK = "default"


class Network(Frozen, SpecObject):
    """A network of a stack; services on it reach each other by service name and alias.

    ``internal=True`` gives no route to the outside. ``subnet`` (CIDR, e.g.
    ``"10.89.0.0/24"``) fixes the address range; by default one is picked. ``ipv6=True``
    makes it dual-stack: each service gets an IPv6 address beside its IPv4 one, and its
    name resolves to both (compose's ``enable_ipv6``).
    """

    name: str
    internal: bool
    subnet: str | None
    ipv6: bool

    def __init__(
        self,
        name: str,
        *,
        internal: bool = False,
        subnet: str | None = None,
        ipv6: bool = False,
        **unknown: Never,
    ) -> None:
        field = f"Network({name!r})"
        validate.reject_unknown(field, unknown, Network.__init__)
        object.__setattr__(self, "name", validate.name(f"{field}.name", name, what="network name"))
        object.__setattr__(self, "internal", validate.boolean(f"{field}.internal", internal))
        object.__setattr__(self, "subnet", None if subnet is None else _cidr(field, subnet))
        object.__setattr__(self, "ipv6", validate.boolean(f"{field}.ipv6", ipv6))

    def canonical(self) -> dict[str, Any]:
        """Name, internal flag and subnet (and ``ipv6`` when set: the form of an IPv4
        network is the one it had before dual-stack existed)."""
        body: dict[str, Any] = {"name": self.name, "internal": self.internal, "subnet": self.subnet}
        if self.ipv6:
            body["ipv6"] = True
        return versioned("network", body)


def _cidr(field: str, value: object) -> str:
    text = validate.string(f"{field}.subnet", value)
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise SpecError(
            f"{field}.subnet",
            f"not a network in CIDR form: {exc}",
            value=value,
            hint='write the network address and prefix length, e.g. "10.89.0.0/24"',
        ) from None
    if net.num_addresses < 4:
        raise SpecError(
            f"{field}.subnet",
            "too small: it needs room for a gateway and a container",
            value=value,
            hint="use a prefix of /30 or shorter (IPv6: /126)",
        )
    return str(net)
