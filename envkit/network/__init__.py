"""Rootless networks: bridges in a user-owned namespace, names, published ports, egress.

See docs/dev/network.md for the design and docs/reference/network.md for the user view.
"""

from __future__ import annotations

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
