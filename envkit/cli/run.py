"""``envkit run``: run an image, as ``docker run`` (foreground or ``-d``); one that is
not in the store is pulled first (``--pull``, :mod:`envkit.pulling`)."""

from __future__ import annotations

import argparse
import os
import sys

from envkit.errors import SpecError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from envkit.plugins.interfaces import Command


class RunCommand:
    """``envkit run [OPTIONS] IMAGE [CMD...]``: foreground (exit code = the container's)
    or detached (``-d``: prints the id)."""

    name = "run"
    help = "run a command in a new container from an image"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--rm", action="store_true", help="remove the container when it exits")
        add("-d", "--detach", action="store_true", help="run in the background, print the id")
        add("-i", "--interactive", action="store_true", help="keep stdin attached")
        add("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
        add("--name", metavar="NAME", help="container name (default: a generated one)")
        add("-e", "--env", action="append", default=[], metavar="K=V", help="set a variable")
        add("--env-file", action="append", default=[], metavar="FILE", help="K=V lines")
        add(
            "-v",
            "--volume",
            action="append",
            default=[],
            metavar="SRC:DST[:ro]",
            help="bind a host path (absolute or ./relative) or mount a named volume",
        )
        add(
            "--tmpfs",
            action="append",
            default=[],
            metavar="DST[:OPTS]",
            help="mount a fresh tmpfs (options: size=64m, mode=1770)",
        )
        add("--shm-size", metavar="SIZE", help="size of /dev/shm, e.g. 1g (default 64m)")
        add(
            "--add-host",
            action="append",
            default=[],
            metavar="NAME:IP",
            help="a line of /etc/hosts (IP may be host-gateway: the host, on a network "
            "made with --host-loopback)",
        )
        add(
            "--sysctl",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a kernel parameter of the container's namespaces (net.*, fs.mqueue.*, ...)",
        )
        add(
            "--ulimit",
            action="append",
            default=[],
            metavar="NAME=SOFT[:HARD]",
            help="a resource limit, e.g. nofile=1024:2048 (-1: unlimited)",
        )
        add("-w", "--workdir", metavar="DIR", help="working directory inside the container")
        add("-u", "--user", metavar="USER[:GROUP]", help="name or uid, optionally :group")
        add("--hostname", metavar="NAME", help="default: the short container id")
        add("--read-only", action="store_true", help="mount the root file system read-only")
        add(
            "--init",
            action="store_true",
            help="run an init (the host's tini-static or catatonit) as pid 1: it passes "
            "signals on and reaps zombies",
        )
        add(
            "--security-opt",
            action="append",
            default=[],
            metavar="OPT",
            help="seccomp=unconfined: no seccomp filter (weakens isolation); "
            "no-new-privileges: always on",
        )
        add("--cap-add", action="append", default=[], metavar="CAP", help="add a capability")
        add("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability")
        add("--entrypoint", metavar="CMD", help="replace the image's entrypoint (clears Cmd)")
        add("--memory", "-m", metavar="SIZE", help="memory limit, e.g. 256m (cgroup v2)")
        add("--cpus", metavar="N", help="CPU limit, e.g. 0.5 (cgroup v2)")
        add("--pids-limit", metavar="N", help="at most N processes (cgroup v2)")
        add(
            "--network",
            "--net",
            action="append",
            default=[],
            metavar="NAME",
            help="join a network (repeatable; 'none': loopback only, the default without -p)",
        )
        add("--network-alias", action="append", default=[], metavar="ALIAS", help="extra name")
        add(
            "-p",
            "--publish",
            action="append",
            default=[],
            metavar="[IP:]HOST:CTR[/udp]",
            help="publish a port on 127.0.0.1 (HOST 0: a free one); joins network "
            "'envkit' unless --network is given",
        )
        add(
            "--stop-signal",
            metavar="SIG",
            help="signal that `envkit stop` sends first (default: the image's STOPSIGNAL, "
            "else SIGTERM)",
        )
        add(
            "--pull",
            choices=("missing", "always", "never"),
            default="missing",
            help="pull the image before running: missing (default: when it is not in the "
            "store), always, never; the pull's lines go to stderr",
        )
        add("image", metavar="IMAGE", help="name, id or digest of an image (pulled if missing)")
        add("cmd", nargs=argparse.REMAINDER, metavar="CMD", help="replaces the image's Cmd")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.container.options import RunOptions
        from envkit.container.prepare import prepare
        from envkit.container.start import run_foreground, start_detached

        if args.detach and args.interactive:
            raise SpecError("-d/-i", "a detached container has no stdin to attach")
        if args.tty and not args.detach and not os.isatty(0) and args.interactive:
            raise SpecError(
                "-t", "the input device is not a TTY", hint="drop -t, or run from a terminal"
            )
        env: dict[str, str] = {}
        for path in args.env_file:
            env.update(parse_env_file(path))
        env.update(parse_env(args.env))
        options = RunOptions(
            args.cmd or None,
            entrypoint=_entrypoint(args.entrypoint),
            env=env,
            volumes=args.volume,
            tmpfs=args.tmpfs,
            workdir=args.workdir,
            user=args.user,
            hostname=args.hostname,
            read_only=args.read_only,
            init=args.init,
            seccomp=_seccomp(args.security_opt),
            cap_add=args.cap_add,
            cap_drop=args.cap_drop,
            name=args.name,
            remove=args.rm,
            detach=args.detach,
            tty=args.tty,
            memory=args.memory,
            shm_size=args.shm_size,
            ulimits=_ulimits(args.ulimit),
            extra_hosts=args.add_host,
            sysctls=args.sysctl,
            cpus=args.cpus,
            pids_limit=args.pids_limit,
            network=args.network,
            network_aliases=args.network_alias,
            ports=args.publish,
            pull=args.pull,
            pull_output=sys.stderr,
            stop_signal=args.stop_signal,
        )
        if options.detach:
            from envkit.container.handle import reap

            reap()
            record = start_detached(prepare(args.image, options))
            print(record.id)
            return 0
        return run_foreground(args.image, options, interactive=args.interactive)


def parse_env(items: Sequence[str]) -> dict[str, str]:
    """``-e K=V`` items; a bare ``K`` takes the caller's value (dropped when unset)."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise SpecError("--env", "expected K=V", value=item)
        if sep:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    return env


def parse_env_file(path: str | Path) -> dict[str, str]:
    """An ``--env-file``: ``K=V`` lines, ``#`` comments and blank lines skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise SpecError(
            "--env-file", f"cannot read {path}: {exc.strerror}", hint="give a readable file"
        ) from None
    lines = [ln.strip() for ln in text.splitlines()]
    return parse_env([ln for ln in lines if ln and not ln.startswith("#")])


def _seccomp(options: Sequence[str]) -> bool:
    """Whether to load the seccomp filter, from docker's ``--security-opt`` values."""
    confined = True
    for option in options:
        key, _, value = option.replace(":", "=", 1).partition("=")
        if key == "seccomp" and value == "unconfined":
            confined = False
        elif key == "no-new-privileges" and value in ("", "true"):
            pass  # envkit always sets no_new_privs, as podman does by default
        else:
            raise SpecError(
                "--security-opt",
                "unsupported option",
                value=option,
                hint="envkit takes seccomp=unconfined and no-new-privileges; it always "
                "applies Docker's default seccomp profile otherwise",
            )
    return confined


def _ulimits(flags: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``--ulimit NAME=SOFT[:HARD]`` flags by name (a later one wins, as docker's)."""
    if not flags:
        return {}
    from envkit.spec.ulimits import parse_flag  # lazy: only with --ulimit

    return {name: (soft, hard) for name, soft, hard in map(parse_flag, flags)}


def _entrypoint(value: str | None) -> list[str] | None:
    """As docker: one executable (no word splitting); ``""`` clears the image's."""
    if value is None:
        return None
    return [value] if value else []


COMMANDS: list[Command] = [RunCommand()]
