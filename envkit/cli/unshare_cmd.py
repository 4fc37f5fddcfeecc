"""``envkit unshare``: a command as root of a user namespace with the containers' id maps.

What ``podman unshare`` is: rootless, image files and volumes belong to the caller and
its subordinate ids, which the caller cannot change or remove from outside. Inside,
they show with their container owners, and ``envkit unshare rm -rf DIR`` removes a
whole ``ENVKIT_HOME``. As root, container ids are a subordinate range too.
"""

from __future__ import annotations

import argparse
import os

from envkit.plugins.interfaces import Command


class UnshareCommand:
    """Run a command (default: the user's shell) as container root."""

    name = "unshare"
    help = "run a command as root of a user namespace with the containers' id maps"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "command",
            nargs=argparse.REMAINDER,
            help="the command and its arguments (default: $SHELL)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.host.as_root import run_as_container_root

        argv = args.command or [os.environ.get("SHELL") or "/bin/sh"]
        return run_as_container_root(argv)


COMMANDS: list[Command] = [UnshareCommand()]
