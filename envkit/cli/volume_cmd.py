"""``envkit volume ls|rm``: named volumes, of every volume backend."""

from __future__ import annotations

import argparse

from envkit.errors import EnvkitError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import Command


class VolumeCommand:
    """``envkit volume ls`` / ``envkit volume rm NAME...``."""

    name = "volume"
    help = "list or remove named volumes (stack volumes are named <stack>_<volume>)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        ls = sub.add_parser("ls", help="every volume of every backend")
        ls.add_argument("-q", "--quiet", action="store_true", help="names only")
        rm = sub.add_parser("rm", help="remove volumes and their data")
        rm.add_argument("names", nargs="+", metavar="NAME")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.plugins.manager import get_manager
        from envkit.stack.volume_backends import remove_data

        backends = get_manager().volume_backends()
        if args.action == "ls":
            rows = [(b, v) for b in sorted(backends) for v in backends[b].list()]
            if args.quiet:
                for _, volume in rows:
                    print(volume)
                return 0
            width = max([len("DRIVER"), *(len(b) for b, _ in rows)])
            print(f"{'DRIVER'.ljust(width)}  VOLUME NAME")
            for backend, volume in rows:
                print(f"{backend.ljust(width)}  {volume}")
            return 0
        in_use = _in_use()
        for name in args.names:
            holders = [b for b in sorted(backends) if name in backends[b].list()]
            if not holders:
                raise EnvkitError(f"no volume named {name!r}", hint="`envkit volume ls` lists them")
            if name in in_use:
                raise EnvkitError(
                    f"volume {name!r} is in use by stack {in_use[name]!r}",
                    hint=f"`envkit down -p {in_use[name]}` first (or `down -v` removes it too)",
                )
            for backend in holders:
                remove_data(backends[backend], name)
            print(name)
        return 0


def _in_use() -> dict[str, str]:
    """Volume name -> the stack that is up and mounts it."""
    from envkit.stack.state import all_stacks

    found = {}
    for record in all_stacks():
        if record.supervised:
            for entry in record.volumes:
                found[entry.split(":", 1)[1]] = record.name
    return found


COMMANDS: list[Command] = [VolumeCommand()]
