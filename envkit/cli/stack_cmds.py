"""Stacks: ``envkit up``, ``down``, ``ls``, ``start``, ``restart``, ``top`` and
``envkit stack ps|logs|exec|ls|stop|start|restart|top|port``.

A stack is found from its file (``stack.py`` by default, else the compose file compose
would pick: ``compose.yaml``, ``compose.yml``, ``docker-compose.yml``,
``docker-compose.yaml`` here or in a parent directory; or the first argument when it is
a file, or ``-f``/``--file``) or, for a stack that is up, by name (``-p NAME``, compose's
project name); when neither is given and no stack file is found, the only stack that is
up is meant. A ``.yaml``/``.yml`` file is read as a compose file.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import EnvkitError, SupervisorUnreachableError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import Command
    from envkit.spec import Stack
    from envkit.stack.state import StackState

DEFAULT_FILE = "stack.py"


class FileOption(argparse.Action):
    """``-f FILE``, repeatable as in compose (``-f compose.yaml -f more.yaml`` merges the
    compose files): the first is ``args.file``, the others ``args.more_files``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is None:
            setattr(namespace, self.dest, values)
        else:
            more = list(getattr(namespace, "more_files", None) or [])
            namespace.more_files = [*more, values]


def _seconds(text: str) -> float:
    """A non-negative number of seconds (``-t``), or argparse's usage error."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _add_target(
    parser: argparse.ArgumentParser, *, positional: bool, short_file: bool = True
) -> None:
    names = ["-f", "--file"] if short_file else ["--file"]
    parser.add_argument(
        *names,
        dest="file",
        action=FileOption,
        metavar="FILE",
        help=f"the stack file or compose file (default: {DEFAULT_FILE}, else compose.yaml); "
        "repeated, compose files are merged in order",
    )
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
    if (
        file is None
        and rest
        and (rest[0].endswith((".py", ".yaml", ".yml")) or Path(rest[0]).is_file())
    ):
        file = rest.pop(0)
    return file, rest


def _more(args: argparse.Namespace) -> list[str]:
    """The compose files after the first ``-f`` (merged into it)."""
    return list(getattr(args, "more_files", None) or [])


def add_file_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``[FILE]``, ``-f FILE`` (repeatable) and ``--stack NAME`` of the commands that read
    a stack file without starting it (``config``, ``export``); ``what`` they do with the
    stack, for ``--stack``'s help."""
    parser.add_argument(
        "file",
        nargs="?",
        help="stack file or compose file (default: ./stack.py, else compose.yaml)",
    )
    parser.add_argument(
        "-f", "--file", dest="file_option", action=FileOption, metavar="FILE",
        help="the same as FILE; repeated, compose files are merged in order",
    )  # fmt: skip
    parser.add_argument(
        "--stack", metavar="NAME", help=f"the stack to {what} when the file defines several"
    )


def add_profile_option(parser: argparse.ArgumentParser) -> None:
    """compose's ``--profile NAME`` (repeatable) for a compose file's services."""
    parser.add_argument(
        "--profile",
        action="append",
        metavar="NAME",
        help="a compose file's profile to activate (repeatable; default: $COMPOSE_PROFILES)",
    )


def default_file() -> Path | None:
    """The stack file meant when none is given (the first of :func:`default_files`);
    ``None`` when there is none."""
    found = default_files()
    return found[0] if found else None


def default_files() -> list[Path]:
    """The files meant when none is given: ``stack.py`` here, else the compose files
    compose would use: ``$COMPOSE_FILE``, else the first of compose's names here or in a
    parent directory with its override file (``compose.override.yaml``) beside it."""
    if Path(DEFAULT_FILE).exists():
        return [Path(DEFAULT_FILE)]
    from envkit.compose.loader import compose_files_from_env, find_compose_file, override_files

    named = compose_files_from_env()
    if named:
        return named
    found = find_compose_file()
    return [found, *override_files(found)] if found is not None else []


def _file_path(file: str | None) -> Path:
    return Path(file) if file is not None else (default_file() or Path(DEFAULT_FILE))


def _load(
    file: str | None,
    stack_name: str | None,
    profiles: list[str] | None = None,
    more: Sequence[str] = (),
) -> Stack:
    if file is None:
        paths = default_files() or [Path(DEFAULT_FILE)]
    else:
        paths = [Path(file), *(Path(m) for m in more)]
    return load_file(paths[0], stack_name, profiles, more=paths[1:])


def load_file(
    path: Path,
    stack_name: str | None = None,
    profiles: list[str] | None = None,
    *,
    more: Sequence[Path] = (),
) -> Stack:
    """The Stack of a stack.py, or of a compose file (``.yaml``/``.yml``, whose warnings
    go to stderr) merged with the compose files ``more``; ``profiles``, compose's
    ``--profile``, replace ``COMPOSE_PROFILES``."""
    from envkit.compose.loader import is_compose_file

    if not is_compose_file(path):
        if more:
            raise EnvkitError(
                f"{path}: only compose files merge; {more[0]} cannot be added to a stack file",
                hint="give one stack.py, or compose files only",
            )
        from envkit.spec.loader import load_stack

        return load_stack(path, stack_name)
    from envkit.compose.loader import load

    project = load([path, *more], profiles=profiles or None)
    for warning in project.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if stack_name is not None and stack_name != project.stack.name:
        raise EnvkitError(
            f"{path}: the compose project is named {project.stack.name!r}, not {stack_name!r}",
            hint="leave --stack out for a compose file (its name: sets the name)",
        )
    return project.stack


def _name(args: argparse.Namespace, file: str | None) -> str:
    """The name of the stack a ps/logs/exec/down means."""
    from envkit.stack import state as ss

    if args.project:
        return str(args.project)
    if file is None and default_file() is None:
        up = ss.all_stacks()
        if len(up) == 1:
            return up[0].name
        raise EnvkitError(
            f"no {DEFAULT_FILE} or compose.yaml here, and {len(up)} stacks are up",
            hint="name the stack with -p NAME (`envkit stack ls` lists them) or give its file",
        )
    return _up_from(file, args.stack) or _load(file, args.stack, None, _more(args)).name


def _up_from(file: str | None, stack_name: str | None) -> str | None:
    """The name of the stack that is up from stack file ``file``, found in the state
    files without running the file (``down`` and ``ps`` start faster); ``None`` when
    there is none, or several."""
    from envkit.stack import state as ss

    path = str(_file_path(file).absolute())
    found = [
        s.name
        for s in ss.all_stacks()
        if s.file == path and (stack_name is None or s.name == stack_name)
    ]
    return found[0] if len(found) == 1 else None


class UpCommand:
    """``envkit up [-d] [FILE] [SERVICE...]``."""

    name = "up"
    help = "build and start a stack (foreground: stream its logs until Ctrl-C)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-d", "--detach", action="store_true", help="return once the stack is up"
        )
        add_profile_option(parser)
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
        parser.add_argument(
            "--pull",
            choices=("missing", "always", "never"),
            default="missing",
            help="pull the services' image references: missing (default: those not in the "
            "store), always, never; the pulls' lines go to stderr",
        )
        _add_target(parser, positional=True)

    def run(self, args: argparse.Namespace) -> int:
        from envkit.build.progress import for_stream
        from envkit.stack import api

        file, services = _split(args)
        stack = _load(file, args.stack, args.profile, _more(args))
        progress = for_stream(mode=args.progress)

        def report(line: str) -> None:
            print(f"{stack.name}: {line}", file=sys.stderr, flush=True)

        try:
            if args.detach or _is_up(stack.name):
                api.up(
                    stack,
                    services,
                    timeout=args.timeout,
                    progress=progress,
                    owned=False,
                    report=report,
                    file=str(_file_path(file).absolute()),
                    pull=args.pull,
                    pull_output=sys.stderr,
                )
                if args.detach:
                    print(f"{stack.name}: up", file=sys.stderr)
                    return 0
                # Foreground on a stack that another process holds: follow its logs
                # until Ctrl-C, which leaves it running (`envkit down` stops it).
                return _follow_logs(stack.name, api.selected(stack, services))
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
                    file=str(_file_path(file).absolute()),
                    pull=args.pull,
                    pull_output=sys.stderr,
                )
            finally:
                stop.set()
                if printer.is_alive():
                    printer.join(5)
            report("stopped")
            return 0
        finally:
            progress.close()


def _is_up(name: str) -> bool:
    from envkit.stack import state as ss

    record = ss.load(name)
    return record is not None and record.supervised


def _follow_logs(name: str, services: list[str]) -> int:
    from envkit.stack import control
    from envkit.stack import state as ss

    payload = {"op": "logs", "services": services, "follow": True}
    try:
        for text in control.stream_text(ss.require(name).control_path, payload):
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return 0


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
        parser.add_argument(
            "-t", "--timeout", type=_seconds, metavar="SECONDS",
            help="seconds each container gets to stop before SIGKILL (default 10; 0: at once)",
        )  # fmt: skip
        add_profile_option(parser)
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
        elif not args.volumes and (name := _up_from(file, args.stack)):
            target = name
        elif file is not None or default_file() is not None:
            # its volumes are known even when it is down
            target = _load(file, args.stack, args.profile, _more(args))
        else:
            target = _name(args, None)
        was_up = api.down(target, volumes=args.volumes, grace=args.timeout)
        name = target if isinstance(target, str) else target.name
        print(f"{name}: {'down' if was_up else 'was not up'}", file=sys.stderr)
        return 0


class StackCommand:
    """``envkit stack ACTION``: the stack forms of the container verbs."""

    name = "stack"
    help = "stacks that are up: ps, logs, exec, ls, stop, start, restart, top, port"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        ps = sub.add_parser("ps", help="the services of a stack")
        _add_target(ps, positional=True)
        logs = sub.add_parser("logs", help="the output of a stack's services")
        logs.add_argument("-f", "--follow", action="store_true", help="keep printing")
        _add_target(logs, positional=True, short_file=False)
        _configure_exec(sub.add_parser("exec", help="run a command in a service's container"))
        sub.add_parser("ls", help="the stacks of this user")
        for verb, text in LIFECYCLE.items():
            _add_target(sub.add_parser(verb, help=text), positional=True)
        _add_target(sub.add_parser("top", help=TopCommand.help), positional=True)
        port = sub.add_parser("port", help="the host port a service's port is published on")
        _add_target(port, positional=False)
        port.add_argument("service", metavar="SERVICE")
        port.add_argument("port", metavar="PORT[/PROTO]")

    def run(self, args: argparse.Namespace) -> int:
        actions = {"ps": _ps, "logs": _logs, "exec": _exec, "ls": _ls, "top": _top, "port": _port}
        if args.action in LIFECYCLE:
            return _lifecycle(args, args.action)
        return actions[args.action](args)


#: The verbs that act on services of a running stack through its supervisor.
LIFECYCLE = {
    "stop": "stop services (all when none are named); `start` brings them back",
    "start": "start stopped services of a stack (all stopped ones when none are named)",
    "restart": "restart services of a stack, each with a new container",
}


def _configure_exec(run: argparse.ArgumentParser) -> None:
    _add_target(run, positional=False)
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    run.add_argument("-w", "--workdir", metavar="DIR")
    run.add_argument("-u", "--user", metavar="USER[:GROUP]")
    run.add_argument("service", metavar="SERVICE")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")


def _running(args: argparse.Namespace, file: str | None) -> StackState:
    """The state of the stack meant, which must have a live supervisor."""
    from envkit.stack import state as ss

    record = ss.require(_name(args, file))
    if not record.supervised:
        raise EnvkitError(
            f"stack {record.name!r} has no supervisor any more (killed?)",
            hint=f"`envkit up -d` adopts its containers that still run; "
            f"`envkit down -p {record.name}` removes what it left",
        )
    return record


def _check_services(record: StackState, services: Sequence[str]) -> None:
    """Raise for the first of ``services`` the stack does not have, naming those it has."""
    unknown = [s for s in services if s not in record.services]
    if unknown:
        raise EnvkitError(
            f"stack {record.name!r} has no service {unknown[0]!r}",
            hint="services: " + ", ".join(record.order),
        )


def _ps(args: argparse.Namespace) -> int:
    from envkit.stack import control, recovery
    from envkit.stack import state as ss

    file, services = _split(args)
    record = ss.require(_name(args, file))
    if record.supervised:
        with contextlib.suppress(SupervisorUnreachableError):
            answer = control.request(record.control_path, {"op": "ps"})
            record = ss.from_dict(answer["state"])
    else:
        record = recovery.as_seen(record)  # the supervisor was killed: what runs now
    rows = [("SERVICE", "CONTAINER", "STATUS", "HEALTH", "RESTARTS", "PORTS")]
    for name in record.order:
        if services and name not in services:
            continue
        s = record.services[name]
        status = recovery.status_text(s)
        health = s.health or ""
        if s.ready:
            health = f"{health}, {s.ready}" if health else s.ready
        rows.append(
            (name, s.container_name, status, health or "-", str(s.restarts), ", ".join(s.ports))
        )
    _table(rows)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from envkit.stack import control
    from envkit.stack import state as ss
    from envkit.stack.logs import stream

    file, services = _split(args)
    record = ss.require(_name(args, file))
    _check_services(record, services)
    if record.supervised and args.follow:
        return _follow_logs(record.name, services or record.order)
    if record.supervised:
        with contextlib.suppress(SupervisorUnreachableError):
            answer = control.request(record.control_path, {"op": "logs", "services": services})
            sys.stdout.write(str(answer["text"]))
            return 0
    stream(record.name, services or record.order, sys.stdout)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from envkit.stack import control

    record = _running(args, args.file)
    _check_services(record, [args.service])
    if not args.cmd:
        raise EnvkitError("exec needs a command", hint=f"envkit stack exec {args.service} sh")
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise EnvkitError(f"-e {item!r}: expected K=V")
        env[key] = value
    sys.stdout.flush()
    answer = control.request(
        record.control_path,
        {
            "op": "exec",
            "service": args.service,
            "cmd": args.cmd,
            "env": env,
            "workdir": args.workdir,
            "user": args.user,
        },
        fds=(0, 1, 2),
        timeout=None,
    )
    if answer.get("error"):
        print(str(answer["error"]).rstrip(), file=sys.stderr)
    return int(answer["exit_code"])


def _ls(args: argparse.Namespace) -> int:
    from envkit.stack import state as ss

    rows = [("NAME", "STATUS", "SERVICES", "FILE")]
    for record in ss.all_stacks():
        status = record.status if record.supervised else "stale (run `envkit down -p NAME`)"
        rows.append((record.name, status, ",".join(record.order), record.file or "-"))
    _table(rows)
    return 0


def _lifecycle(args: argparse.Namespace, op: str) -> int:
    from envkit.stack import api

    file, services = _split(args)
    record = _running(args, file)
    done = api.lifecycle(record.name, op, services)
    past = {"stop": "stopped", "start": "started", "restart": "restarted"}[op]
    for name in done:
        print(f"{record.name}: {name} {past}", file=sys.stderr)
    return 0


def _top(args: argparse.Namespace) -> int:
    from envkit.runtime import state as rs
    from envkit.stack.processes import processes

    file, services = _split(args)
    record = _running(args, file)
    rows = [("SERVICE", "PID", "CONTAINER PID", "UID", "COMMAND")]
    for name in record.order:
        if services and name not in services:
            continue
        container = record.services[name].container
        found = rs.load(rs.containers_dir() / container) if container else None
        if found is None or not found.running:
            continue
        for proc in processes(found.pid):
            rows.append((name, str(proc.pid), str(proc.container_pid), str(proc.uid), proc.command))
    _table(rows)
    return 0


def _port(args: argparse.Namespace) -> int:
    from envkit.stack.api import RunningService

    record = _running(args, args.file)
    _check_services(record, [args.service])
    number, _, proto = args.port.partition("/")
    if not number.isdigit():
        raise EnvkitError(f"port {args.port!r}: expected PORT or PORT/PROTO", hint="e.g. 8080/tcp")
    host_port = RunningService(record.name, args.service).port(int(number), proto or "tcp")
    print(f"127.0.0.1:{host_port}")
    return 0


class LsCommand:
    """``envkit ls``: the stacks of this user."""

    name = "ls"
    help = "the stacks of this user (up, or left by a killed supervisor)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """No options."""

    def run(self, args: argparse.Namespace) -> int:
        return _ls(args)


class _LifecycleCommand:
    """``envkit start|restart [FILE] [SERVICE...]``."""

    def __init__(self, verb: str) -> None:
        self.name = verb
        self.help = LIFECYCLE[verb]

    def configure(self, parser: argparse.ArgumentParser) -> None:
        _add_target(parser, positional=True)

    def run(self, args: argparse.Namespace) -> int:
        return _lifecycle(args, self.name)


class TopCommand:
    """``envkit top [FILE] [SERVICE...]``."""

    name = "top"
    help = "the processes of a stack's services"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        _add_target(parser, positional=True)

    def run(self, args: argparse.Namespace) -> int:
        return _top(args)


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    from envkit.cli import shown  # lazy: only the commands that print a table

    shown.table(rows, gap=2)


COMMANDS: list[Command] = [
    UpCommand(),
    DownCommand(),
    StackCommand(),
    LsCommand(),
    _LifecycleCommand("start"),
    _LifecycleCommand("restart"),
    TopCommand(),
]
