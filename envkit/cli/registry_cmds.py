"""Registry commands: ``pull``, ``push``, ``login``, ``logout``."""

from __future__ import annotations

import sys

from envkit.cli import plain
from envkit.errors import RegistryError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path

    # Typing only: importing it loads pluggy, 15 ms on every pull and push.
    from envkit.plugins.interfaces import Command


#: The switches of a plain ``pull`` or ``push`` command line.
QUIET = {"-q": "quiet", "--quiet": "quiet"}


class PullCommand:
    """``envkit pull REF [--platform os/arch]``, ``envkit pull --update [FILE]``."""

    name = "pull"
    help = "pull an image from a registry into the local store, or update envkit.lock"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "ref",
            nargs="?",
            metavar="REF|FILE",
            help="name[:tag] or name@sha256:...; with --update, the stack file (default: stack.py)",
        )
        parser.add_argument(
            "--platform", metavar="OS/ARCH", help="platform to pull (default: this host's)"
        )
        parser.add_argument("-q", "--quiet", action="store_true", help="print only the ref")
        parser.add_argument(
            "--update",
            action="store_true",
            help="resolve the bases of FILE and its envkit.lock again, rewrite the lock",
        )

    def run_plain(self, argv: Sequence[str]) -> int | None:
        """:meth:`run` for ``pull [-q] REF`` without argparse; ``None`` for other forms."""
        args = plain.read(
            argv, QUIET, ["ref"], 1, {"platform": None, "quiet": False, "update": False}
        )
        return None if args is None else self.run(args)

    def run(self, args: argparse.Namespace | plain.PlainArgs) -> int:
        from envkit.registry.progress import Progress, for_terminal
        from envkit.registry.pull import pull

        if args.update:
            from pathlib import Path

            return _update(Path(args.ref or "stack.py"), args.quiet)
        if not args.ref:
            raise RegistryError(
                "no image reference given", hint="envkit pull NAME[:TAG], or --update [FILE]"
            )
        progress = Progress.silent() if args.quiet else for_terminal()
        image = pull(args.ref, platform=args.platform, progress=progress)
        if not args.quiet:
            from envkit.pulling import status

            print(f"Status: {status(image)}")
        print(str(image.ref))
        return 0


def _update(file: Path, quiet: bool) -> int:
    from envkit.build.lockfile import update_lock
    from envkit.store.store import Store

    if file.is_dir():
        file = file / "stack.py"
    lock, changes = update_lock(file, Store.default())
    for change in changes:
        if change.old is None:
            note = "locked"
        elif change.old != change.new:
            note = f"updated from {change.old}"
        else:
            note = "unchanged"
        if not quiet:
            print(f"{change.ref}: {change.new} ({note})")
    if not quiet:
        print(
            f"{lock.path}: {len(changes)} image(s)" if changes else f"{lock.path}: nothing to lock"
        )
    return 0


class PushCommand:
    """``envkit push IMAGE [REF]``."""

    name = "push"
    help = "push an image of the local store to a registry"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("image", metavar="IMAGE", help="name, id or digest in the store")
        parser.add_argument(
            "ref", nargs="?", metavar="REF", help="where to push (default: the image's name)"
        )
        parser.add_argument("-q", "--quiet", action="store_true", help="print only the digest")

    def run_plain(self, argv: Sequence[str]) -> int | None:
        """:meth:`run` for ``push [-q] IMAGE [REF]`` without argparse; ``None`` else."""
        args = plain.read(argv, QUIET, ["image", "ref"], 1, {"quiet": False})
        return None if args is None else self.run(args)

    def run(self, args: argparse.Namespace | plain.PlainArgs) -> int:
        from envkit.registry.progress import Progress, for_terminal
        from envkit.registry.push import push

        progress = Progress.silent() if args.quiet else for_terminal()
        pushed = push(args.image, args.ref, progress=progress)
        if args.quiet:
            print(pushed.digest)
        return 0


class LoginCommand:
    """``envkit login REGISTRY [-u USER] [--password-stdin]``."""

    name = "login"
    help = "log in to a registry (credentials kept in $ENVKIT_HOME/auth.json, mode 0600)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("registry", metavar="REGISTRY", help="host[:port], e.g. docker.io")
        parser.add_argument("-u", "--username", metavar="USER", help="user name")
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.registry.credentials import Credentials
        from envkit.registry.login import login

        user = args.username
        if not user:
            if not sys.stdin.isatty() or args.password_stdin:
                raise RegistryError(
                    "no user name given", hint="envkit login -u USER --password-stdin REGISTRY"
                )
            user = input("Username: ").strip()
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif sys.stdin.isatty():
            import getpass

            password = getpass.getpass("Password: ")
        else:
            raise RegistryError(
                "stdin is not a terminal and --password-stdin was not given",
                hint="pipe the password with --password-stdin",
            )
        if not user or not password:
            raise RegistryError("empty user name or password")
        path = login(args.registry, Credentials(user, password))
        print(f"Login Succeeded (credentials kept in {path})")
        return 0


class LogoutCommand:
    """``envkit logout REGISTRY``."""

    name = "logout"
    help = "forget the credentials envkit keeps for a registry"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("registry", metavar="REGISTRY", help="host[:port], e.g. docker.io")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.registry.login import logout, registry_name

        name = registry_name(args.registry)
        if logout(name):
            print(f"Removing login credentials for {name}")
        else:
            print(f"Not logged in to {name}")
        return 0


COMMANDS: list[Command] = [PullCommand(), PushCommand(), LoginCommand(), LogoutCommand()]
