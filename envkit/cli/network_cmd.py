"""``envkit network create|ls|rm|inspect``: user networks, as ``docker network``."""

from __future__ import annotations

import argparse
import json
import sys

from envkit.cli import shown
from envkit.errors import NetworkError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import Command


class NetworkCommand:
    """``envkit network ACTION ...``."""

    name = "network"
    help = "manage networks: create, ls, rm, inspect"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        create = sub.add_parser("create", help="create a network")
        create.add_argument("name", metavar="NAME")
        create.add_argument(
            "--subnet",
            metavar="CIDR",
            action="append",
            default=[],
            help="default: a free 10.89.N.0/24; give it twice (IPv4 and IPv6) for a dual-stack "
            "network with a subnet of your own for each",
        )
        create.add_argument(
            "--ipv6",
            action="store_true",
            help="dual-stack: containers get an IPv6 address too (a free /64 of this home's "
            "unique local prefix unless --subnet gives one)",
        )
        create.add_argument("--internal", action="store_true", help="no egress, no resolver")
        create.add_argument(
            "--host-loopback",
            action="store_true",
            help="containers reach the host's 127.0.0.1 at host.envkit.internal",
        )
        ls = sub.add_parser("ls", help="list networks")
        ls.add_argument("-q", "--quiet", action="store_true", help="only the names")
        rm = sub.add_parser("rm", help="remove networks (refused while containers use them)")
        rm.add_argument("names", nargs="+", metavar="NAME")
        inspect = sub.add_parser("inspect", help="show networks and their containers as JSON")
        inspect.add_argument("names", nargs="+", metavar="NAME")

    def run(self, args: argparse.Namespace) -> int:
        from envkit import network

        if args.action == "create":
            v4, v6 = _subnets(args.subnet)
            net = network.create(
                args.name,
                v4,
                internal=args.internal,
                host_loopback=args.host_loopback,
                ipv6=args.ipv6,
                subnet6=v6,
            )
            note = network.ipv6_egress_note(net)
            if note:
                print(f"envkit: note: {note}", file=sys.stderr)
            print(net.name)
        elif args.action == "ls":
            network.reap()
            nets = network.list_networks()
            if args.quiet:
                for net in nets:
                    print(net.name)
                return 0
            rows = [("NAME", "SUBNET", "GATEWAY", "INTERNAL", "CONTAINERS")]
            for net in nets:
                attached = network.inspect(net.name)["containers"]
                internal = "yes" if net.internal else "no"
                subnet = f"{net.subnet},{net.subnet6}" if net.subnet6 else net.subnet
                rows.append((net.name, subnet, net.gateway, internal, str(len(attached))))
            shown.table(rows)
        elif args.action == "rm":
            network.reap()
            for name in args.names:
                network.remove(name)
                print(name)
        else:
            network.reap()
            print(json.dumps([network.inspect(n) for n in args.names], indent=4))
        return 0


def _subnets(given: list[str]) -> tuple[str | None, str | None]:
    """The IPv4 and the IPv6 subnet among ``--subnet`` values (at most one of each)."""
    v4 = [s for s in given if ":" not in s]
    v6 = [s for s in given if ":" in s]
    if len(v4) > 1 or len(v6) > 1:
        raise NetworkError(
            f"--subnet given {len(given)} times: {', '.join(given)}",
            hint="give at most one IPv4 and one IPv6 subnet",
        )
    return (v4[0] if v4 else None), (v6[0] if v6 else None)


COMMANDS: list[Command] = [NetworkCommand()]
