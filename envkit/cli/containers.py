"""``envkit ps``, ``stop``, ``kill``, ``rm``, ``logs``, ``exec`` and ``port``, with docker's
meanings.

They work from any process through the containers' records on disk
(:mod:`envkit.runtime.state`); each first reaps what a killed envkit left behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from envkit.cli import shown
from envkit.errors import EnvkitError, SpecError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from envkit.plugins.interfaces import Command
    from envkit.runtime.state import ContainerState


class PsCommand:
    """``envkit ps [-a] [-q]``."""

    name = "ps"
    help = "list containers (running ones; -a: all)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-a", "--all", action="store_true", help="also stopped containers")
        parser.add_argument("-q", "--quiet", action="store_true", help="only the ids")
        parser.add_argument("--no-trunc", action="store_true", help="full ids and commands")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.container.handle import reap
        from envkit.runtime import state as st

        reap()
        records = [s for s in st.all_states() if args.all or s.status == st.RUNNING]
        if args.quiet:
            for record in records:
                print(record.id if args.no_trunc else record.id[:12])
            return 0
        rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")]
        published = _published()
        now = time.time()
        for r in records:
            command = " ".join(r.argv)
            if not args.no_trunc and len(command) > 20:
                command = command[:19] + "…"
            rows.append(
                (
                    r.id if args.no_trunc else r.id[:12],
                    r.image,
                    shown.quoted(command),
                    f"{_ago(now - r.created)} ago",
                    status_text(r, now),
                    ", ".join(published.get(r.name, [])) if r.status == st.RUNNING else "",
                    r.name,
                )
            )
        shown.table(rows)
        return 0


class StopCommand:
    """``envkit stop [-s SIG] [-t N] NAME...``."""

    name = "stop"
    help = "stop containers: their stop signal (default SIGTERM), SIGKILL after a grace period"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-t", "--time", "--timeout", type=float, default=10, metavar="N", help="seconds"
        )
        parser.add_argument(
            "-s",
            "--signal",
            metavar="SIG",
            help="signal to send first, name or number (default: the container's stop "
            "signal: --stop-signal, the image's STOPSIGNAL, else SIGTERM)",
        )
        parser.add_argument("containers", nargs="+", metavar="NAME")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.container.handle import get

        sig = None if args.signal is None else parse_signal(args.signal)
        return _each(args.containers, lambda ref: get(ref).stop(timeout=args.time, signal=sig))


class KillCommand:
    """``envkit kill [-s SIG] NAME...``."""

    name = "kill"
    help = "send a signal (default SIGKILL) to running containers"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-s", "--signal", default="KILL", metavar="SIG", help="name or number")
        parser.add_argument("containers", nargs="+", metavar="NAME")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.container.handle import get

        sig = parse_signal(args.signal)

        def kill(ref: str) -> None:
            container = get(ref)
            if container.status != "running":
                raise EnvkitError(f"container {container.name} is not running")
            container.kill(sig)

        return _each(args.containers, kill)


class RmCommand:
    """``envkit rm [-f] NAME...``."""

    name = "rm"
    help = "remove stopped containers (-f: kill running ones first)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-f", "--force", action="store_true", help="kill if running")
        parser.add_argument("containers", nargs="+", metavar="NAME")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.container.handle import get

        return _each(args.containers, lambda ref: get(ref).remove(force=args.force))


class LogsCommand:
    """``envkit logs [-f] [--tail N] NAME``."""

    name = "logs"
    help = "print a container's output (detached containers and captured output)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-f", "--follow", action="store_true", help="keep printing")
        parser.add_argument("--tail", default="all", metavar="N", help="only the last N lines")
        parser.add_argument("-t", "--timestamps", action="store_true", help="show times")
        parser.add_argument("container", metavar="NAME")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.container.handle import reap
        from envkit.runtime import logs
        from envkit.runtime import state as st

        reap()
        record = st.find(args.container)
        path = str(record.dir / "log")
        tail = _parse_tail(args.tail)
        offset = 0
        records = []
        try:
            with open(path, "rb") as f:
                data = f.read()
            offset = len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1
            records = [logs.parse_line(ln) for ln in data[:offset].decode().splitlines()]
        except FileNotFoundError:
            pass
        if tail is not None:
            records = records[-tail:] if tail else []
        for record_ in records:
            _print(record_, args.timestamps)
        if args.follow:
            for record_ in logs.follow(path, offset, lambda: _running(record)):
                _print(record_, args.timestamps)
        return 0


class ExecCommand:
    """``envkit exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] NAME CMD...``."""

    name = "exec"
    help = "run a command in a running container"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("-i", "--interactive", action="store_true", help="keep stdin attached")
        add("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
        add("-e", "--env", action="append", default=[], metavar="K=V", help="set a variable")
        add("-w", "--workdir", metavar="DIR", help="working directory inside the container")
        add("-u", "--user", metavar="USER[:GROUP]", help="default: the container's user")
        add("container", metavar="NAME")
        add("cmd", nargs=argparse.REMAINDER, metavar="CMD")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.cli.run import parse_env
        from envkit.container.execute import start_exec
        from envkit.runtime import state as st

        if not args.cmd:
            raise SpecError("exec", "no command given", hint="envkit exec NAME CMD [ARG...]")
        from envkit.container.handle import reap

        reap()
        record = st.find(args.container)
        shield = None
        with open(os.devnull, "rb") as devnull:
            stdin = 0 if args.interactive else devnull.fileno()
            stdio = (stdin, 1, 2)
            quiet = (devnull.fileno(), devnull.fileno(), devnull.fileno())  # -t: the pty's
            if not args.tty:
                from envkit.runtime import relay

                shield = relay.shield(stdio)  # never the caller's terminal itself
            try:
                process = start_exec(
                    record,
                    args.cmd,
                    env=parse_env(args.env),
                    workdir=args.workdir,
                    user=args.user,
                    stdio=quiet if args.tty else (stdio if shield is None else shield.stdio),
                    tty=args.tty,
                )
            except BaseException:
                if shield is not None:
                    shield.finish()
                raise
        if shield is not None:
            shield.start()
            try:
                code = process.wait()
            finally:
                shield.finish()
            if process.error:
                print(f"envkit: error: {process.error}", file=sys.stderr)
            return code
        if process.error:
            print(f"envkit: error: {process.error}", file=sys.stderr)
        if process.console is not None:
            from envkit.runtime import tty

            try:
                tty.attach(process.console, 0 if args.interactive else None, 1)
            finally:
                os.close(process.console)
        return process.wait()


class PortCommand:
    """``envkit port NAME [PORT[/PROTO]]``."""

    name = "port"
    help = "list a container's published ports (or the host address of one of them)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("container", metavar="NAME")
        parser.add_argument("port", nargs="?", metavar="PORT[/PROTO]", help="e.g. 80 or 53/udp")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.container.handle import get

        mappings = get(args.container).ports()
        if args.port is None:
            for m in mappings:
                print(f"{m.container_port}/{m.protocol} -> {m.host_ip}:{m.host_port}")
            return 0
        number, _, proto = args.port.partition("/")
        if not number.isdigit() or proto not in ("", "tcp", "udp"):
            raise SpecError("port", "expected PORT or PORT/tcp or PORT/udp", value=args.port)
        found = [
            m
            for m in mappings
            if m.container_port == int(number) and m.protocol == (proto or "tcp")
        ]
        if not found:
            raise EnvkitError(
                f"no public port {number}/{proto or 'tcp'} published for {args.container}",
                hint=f"`envkit port {args.container}` lists what is published",
            )
        for m in found:
            print(f"{m.host_ip}:{m.host_port}")
        return 0


def _published() -> dict[str, list[str]]:
    """Container name -> ``127.0.0.1:8080->80/tcp`` of each published port."""
    from envkit.network import ports

    return {c: [str(m) for m in ports.published(c)] for c in ports.all_containers()}


def status_text(record: ContainerState, now: float) -> str:
    """docker's STATUS column: ``Up 3 seconds``, ``Exited (0) 5 minutes ago``, ``Created``."""
    if record.status == "running":
        return f"Up {_ago(now - record.started)}"
    if record.status == "exited":
        return f"Exited ({record.exit_code}) {_ago(now - record.finished)} ago"
    return "Created"


def parse_signal(text: str) -> int:
    """``KILL``, ``SIGKILL``, ``kill``, ``9``, ``RTMIN+3``: docker's Linux signal table
    (:mod:`envkit.spec.signals`)."""
    from envkit.spec.signals import number  # lazy: only for stop -s and kill

    try:
        return number(text)
    except ValueError:
        raise SpecError(
            "--signal", "unknown signal", value=text, hint="e.g. SIGQUIT, QUIT or 3"
        ) from None


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "Less than a second" if seconds < 1 else f"{seconds} seconds"


def _each(refs: list[str], action: Callable[[str], object]) -> int:
    """Apply ``action`` to each container, print its ref as docker does; 1 if any failed."""
    failed = 0
    for ref in refs:
        try:
            action(ref)
        except EnvkitError as exc:
            print(f"envkit: error: {exc}", file=sys.stderr)
            failed = 1
        else:
            print(ref)
    return failed


def _parse_tail(text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit():
        raise SpecError("--tail", "expected a number of lines or 'all'", value=text)
    return int(text)


def _running(record: ContainerState) -> bool:
    from envkit.runtime import state as st

    fresh = st.load(record.dir)
    return (
        fresh is not None
        and fresh.status != st.EXITED
        and st.alive(fresh.supervisor, fresh.supervisor_start)
    )


def _print(item: tuple[str, str, str], timestamps: bool) -> None:
    stream, text, when = item
    out = sys.stderr if stream == "stderr" else sys.stdout
    out.write(f"{when} {text}" if timestamps else text)
    out.flush()


COMMANDS: list[Command] = [
    PsCommand(),
    StopCommand(),
    KillCommand(),
    RmCommand(),
    LogsCommand(),
    ExecCommand(),
    PortCommand(),
]
