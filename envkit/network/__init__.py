"""Rootless networks: bridges in a user-owned namespace, names, published ports, egress.

See docs/dev/network.md for the design and docs/reference/network.md for the user view.

Each name loads its module on first use (:pep:`562`): the network daemon imports only
the modules it serves from, not the commands' side (containers, endpoints, networks).
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.errors import NetworkError
    from envkit.network.containers import (
        hosts_file,
        prepare,
        publish,
        published,
        release,
        resolv_conf,
        unpublish,
    )
    from envkit.network.endpoints import connect, disconnect, reap, teardown
    from envkit.network.networks import create, inspect, ipv6_egress_note, list_networks, remove
    from envkit.network.ports import PortMapping
    from envkit.network.state import Endpoint, NetworkInfo

__all__ = [
    "Endpoint",
    "NetworkError",
    "NetworkInfo",
    "PortMapping",
    "connect",
    "create",
    "disconnect",
    "hosts_file",
    "inspect",
    "ipv6_egress_note",
    "list_networks",
    "prepare",
    "publish",
    "published",
    "reap",
    "release",
    "remove",
    "resolv_conf",
    "teardown",
    "unpublish",
]

#: The module that defines each public name.
_HOMES = {
    "Endpoint": "envkit.network.state",
    "NetworkError": "envkit.errors",
    "NetworkInfo": "envkit.network.state",
    "PortMapping": "envkit.network.ports",
    "connect": "envkit.network.endpoints",
    "create": "envkit.network.networks",
    "disconnect": "envkit.network.endpoints",
    "hosts_file": "envkit.network.containers",
    "inspect": "envkit.network.networks",
    "ipv6_egress_note": "envkit.network.networks",
    "list_networks": "envkit.network.networks",
    "prepare": "envkit.network.containers",
    "publish": "envkit.network.containers",
    "published": "envkit.network.containers",
    "reap": "envkit.network.endpoints",
    "release": "envkit.network.containers",
    "remove": "envkit.network.networks",
    "resolv_conf": "envkit.network.containers",
    "teardown": "envkit.network.endpoints",
    "unpublish": "envkit.network.containers",
}


if not TYPE_CHECKING:  # type checkers see the names imported above, and no other
    from envkit.lazy_names import attributes

    __getattr__, __dir__ = attributes(__name__, _HOMES, globals(), __all__)
