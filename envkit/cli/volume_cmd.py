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
                kind, holder = in_use[name]
                hint = (
                    f"`envkit down -p {holder}` first (or `down -v` removes it too)"
                    if kind == "stack"
                    else f"`envkit rm -f {holder}` first"
                )
                raise EnvkitError(f"volume {name!r} is in use by {kind} {holder!r}", hint=hint)
            for backend in holders:
                remove_data(backends[backend], name)
            print(name)
        return 0


def _in_use() -> dict[str, tuple[str, str]]:
    """Volume name -> ("stack", name) of a stack that is up and mounts it, or
    ("container", name) of a container (running or not) that mounts it, as docker
    refuses to remove a volume any container refers to."""
    from envkit.runtime.state import all_states
    from envkit.stack.state import all_stacks

    found: dict[str, tuple[str, str]] = {}
    for container in all_states():
        for volume in container.volumes:
            found[volume] = ("container", container.name)
    for record in all_stacks():
        if record.supervised:
            for entry in record.volumes:
                found[entry.split(":", 1)[1]] = ("stack", record.name)
    return found


COMMANDS: list[Command] = [VolumeCommand()]
