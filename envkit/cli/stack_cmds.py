"""``envkit up``, ``envkit down`` and ``envkit stack ps|logs|exec|ls``: stacks.

A stack is found from its file (``stack.py`` by default, or the first argument when it
is a file, or ``--file``) or, for a stack that is up, by name (``-p NAME``, compose's
project name); when neither is given and no ``stack.py`` is here, the only stack that is
up is meant.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envkit.errors import EnvkitError

if TYPE_CHECKING:
    from envkit.plugins.interfaces import Command
    from envkit.spec import Stack

DEFAULT_FILE = "stack.py"


def _add_target(parser: argparse.ArgumentParser, *, positional: bool) -> None:
    parser.add_argument("--file", metavar="FILE", help=f"the stack file (default: {DEFAULT_FILE})")
    parser.add_argument("--stack", metavar="NAME", help="the stack of the file, if it has several")
    parser.add_argument("-p", "--project", metavar="NAME", help="a stack that is up, by name")
    if positional:
        parser.add_argument(
            "args",
            nargs="*",
            metavar="[FILE] SERVICE",
            help="the stack file (when the first argument is a file), then services",
        )


def _split(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The stack file and the services of ``[FILE] SERVICE...``."""
    rest = list(getattr(args, "args", []) or [])
    file = args.file
    if file is None and rest and (rest[0].endswith(".py") or Path(rest[0]).is_file()):
        file = rest.pop(0)
    return file, rest


def _load(file: str | None, stack_name: str | None) -> Stack:
    from envkit.spec.loader import load_stack

    return load_stack(Path(file or DEFAULT_FILE), stack_name)


def _name(args: argparse.Namespace, file: str | None) -> str:
    """The name of the stack a ps/logs/exec/down means."""
    from envkit.stack import state as ss

    if args.project:
        return str(args.project)
    if file is None and not Path(DEFAULT_FILE).exists():
        up = ss.all_stacks()
        if len(up) == 1:
            return up[0].name
        raise EnvkitError(
            f"no {DEFAULT_FILE} here, and {len(up)} stacks are up",
            hint="name the stack with -p NAME (`envkit stack ls` lists them) or give its file",
        )
    return _load(file, args.stack).name


class UpCommand:
    """``envkit up [-d] [FILE] [SERVICE...]``."""

    name = "up"
    help = "build and start a stack (foreground: stream its logs until Ctrl-C)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-d", "--detach", action="store_true", help="return once the stack is up"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=300.0,
            metavar="S",
            help="seconds for every service to start and be healthy (default 300)",
        )
        parser.add_argument(
            "--progress",
            choices=("auto", "plain", "tty", "quiet"),
            default="auto",
            help="build progress on stderr",
        )
        _add_target(parser, positional=True)

    def run(self, args: argparse.Namespace) -> int:
        from envkit.build.progress import for_stream
        from envkit.stack import api

        file, services = _split(args)
        stack = _load(file, args.stack)
        progress = for_stream(mode=args.progress)

        def report(line: str) -> None:
            print(f"{stack.name}: {line}", file=sys.stderr, flush=True)

        try:
            if args.detach:
                api.up(
                    stack,
                    services,
                    timeout=args.timeout,
                    progress=progress,
                    owned=False,
                    file=str(Path(file or DEFAULT_FILE).absolute()),
                )
                print(f"{stack.name}: up", file=sys.stderr)
                return 0
            names = api.selected(stack, services)
            stop = threading.Event()
            printer = threading.Thread(
                target=_stream_logs, args=(stack.name, names, stop), daemon=True
            )
            try:
                api.up_foreground(
                    stack,
                    services,
                    timeout=args.timeout,
                    progress=progress,
                    report=report,
                    on_started=printer.start,
                    file=str(Path(file or DEFAULT_FILE).absolute()),
                )
            finally:
                stop.set()
                if printer.is_alive():
                    printer.join(5)
            report("stopped")
            return 0
        finally:
            progress.close()


def _stream_logs(stack: str, services: list[str], stop: threading.Event) -> None:
    from envkit.stack.logs import stream

    stream(stack, services, sys.stdout, follow=True, stop=stop)


class DownCommand:
    """``envkit down [-v] [FILE]``."""

    name = "down"
    help = "stop a stack and remove its containers and networks (-v: its volumes too)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-v", "--volumes", action="store_true", help="remove the stack's named volumes"
        )
        _add_target(parser, positional=True)

    def run(self, args: argparse.Namespace) -> int:
        from envkit.stack import api

        file, rest = _split(args)
        if rest:
            raise EnvkitError(
                f"down takes no services: {' '.join(rest)}",
                hint="down removes the whole stack; stop one container with `envkit stop`",
            )
        target: Stack | str
        if args.project:
            target = str(args.project)
        elif file is not None or Path(DEFAULT_FILE).exists():
            target = _load(file, args.stack)  # its volumes are known even when it is down
        else:
            target = _name(args, None)
        was_up = api.down(target, volumes=args.volumes)
        name = target if isinstance(target, str) else target.name
        print(f"{name}: {'down' if was_up else 'was not up'}", file=sys.stderr)
        return 0


class StackCommand:
    """``envkit stack ps|logs|exec|ls``: the stack forms of the container verbs."""

    name = "stack"
    help = "stacks that are up: ps, logs, exec, ls"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        ps = sub.add_parser("ps", help="the services of a stack")
        _add_target(ps, positional=True)
        logs = sub.add_parser("logs", help="the output of a stack's services")
        logs.add_argument("-f", "--follow", action="store_true", help="keep printing")
        _add_target(logs, positional=True)
        run = sub.add_parser("exec", help="run a command in a service's container")
        _add_target(run, positional=False)
        run.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
        run.add_argument("-w", "--workdir", metavar="DIR")
        run.add_argument("-u", "--user", metavar="USER[:GROUP]")
        run.add_argument("service", metavar="SERVICE")
        run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")
        sub.add_parser("ls", help="the stacks that are up")

    def run(self, args: argparse.Namespace) -> int:
        action = {"ps": _ps, "logs": _logs, "exec": _exec, "ls": _ls}[args.action]
        return action(args)


def _ps(args: argparse.Namespace) -> int:
    from envkit.stack import state as ss

    file, services = _split(args)
    record = ss.require(_name(args, file))
    rows = [("SERVICE", "CONTAINER", "STATUS", "HEALTH", "RESTARTS", "PORTS")]
    for name in record.order:
        if services and name not in services:
            continue
        s = record.services[name]
        status = s.status if s.exit_code is None else f"{s.status} ({s.exit_code})"
        rows.append(
            (name, s.container_name, status, s.health or "-", str(s.restarts), ", ".join(s.ports))
        )
    _table(rows)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from envkit.stack import state as ss
    from envkit.stack.logs import stream

    file, services = _split(args)
    record = ss.require(_name(args, file))
    unknown = [s for s in services if s not in record.services]
    if unknown:
        raise EnvkitError(
            f"stack {record.name!r} has no service {unknown[0]!r}",
            hint="services: " + ", ".join(record.order),
        )
    stream(record.name, services or record.order, sys.stdout, follow=args.follow)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from envkit import containers
    from envkit.stack import state as ss

    record = ss.require(_name(args, args.file))
    service = record.services.get(args.service)
    if service is None or not service.container:
        raise EnvkitError(
            f"stack {record.name!r} has no running service {args.service!r}",
            hint="services: " + ", ".join(record.order),
        )
    if not args.cmd:
        raise EnvkitError("exec needs a command", hint=f"envkit stack exec {args.service} sh")
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise EnvkitError(f"-e {item!r}: expected K=V")
        env[key] = value
    container = containers.get(service.container)
    result = container.exec(
        args.cmd, env=env, workdir=args.workdir, user=args.user, stdio=(0, 1, 2)
    )
    return result.exit_code


def _ls(args: argparse.Namespace) -> int:
    from envkit.stack import state as ss

    rows = [("NAME", "STATUS", "SERVICES", "FILE")]
    for record in ss.all_stacks():
        status = record.status if record.supervised else "stale (run `envkit down -p NAME`)"
        rows.append((record.name, status, ",".join(record.order), record.file or "-"))
    _table(rows)
    return 0


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


COMMANDS: list[Command] = [UpCommand(), DownCommand(), StackCommand()]
