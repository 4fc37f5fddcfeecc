"""``envkit network create|ls|rm|inspect``: user networks, as ``docker network``."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

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
        create.add_argument("--subnet", metavar="CIDR", help="default: a free 10.89.N.0/24")
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
            net = network.create(
                args.name, args.subnet, internal=args.internal, host_loopback=args.host_loopback
            )
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
                rows.append((net.name, net.subnet, net.gateway, internal, str(len(attached))))
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        elif args.action == "rm":
            network.reap()
            for name in args.names:
                network.remove(name)
                print(name)
        else:
            network.reap()
            print(json.dumps([network.inspect(n) for n in args.names], indent=4))
        return 0


COMMANDS: list[Command] = [NetworkCommand()]
