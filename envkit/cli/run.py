"""``envkit run``: run an image from the store in the foreground, as ``docker run``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import SpecError
from envkit.plugins.interfaces import Command


class RunCommand:
    """``envkit run [OPTIONS] IMAGE [CMD...]``: stdio inherited, exit code = the container's."""

    name = "run"
    help = "run a command in a new container from an image (foreground)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--rm", action="store_true", help="accepted; containers are always removed on exit")
        add("--name", metavar="NAME", help="container name (informational for now)")
        add("-e", "--env", action="append", default=[], metavar="K=V", help="set a variable")
        add("--env-file", action="append", default=[], metavar="FILE", help="K=V lines")
        add("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]")
        add("--tmpfs", action="append", default=[], metavar="DST", help="mount a fresh tmpfs")
        add("-w", "--workdir", metavar="DIR", help="working directory inside the container")
        add("-u", "--user", metavar="USER[:GROUP]", help="name or uid, optionally :group")
        add("--hostname", metavar="NAME", help="default: the short container id")
        add("--read-only", action="store_true", help="mount the root file system read-only")
        add("--entrypoint", metavar="CMD", help="replace the image's entrypoint (clears Cmd)")
        for flag in ("--memory", "--cpus", "--pids-limit"):
            add(flag, metavar="LIMIT", help="refused: cgroup limits are not implemented yet")
        add("image", metavar="IMAGE", help="name, id or digest of an image in the store")
        add("cmd", nargs=argparse.REMAINDER, metavar="CMD", help="replaces the image's Cmd")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.containers import RunOptions, run_foreground

        _refuse_limits(args)
        env: dict[str, str] = {}
        for path in args.env_file:
            env.update(parse_env_file(Path(path)))
        env.update(parse_env(args.env))
        options = RunOptions(
            cmd=args.cmd or None,
            entrypoint=_entrypoint(args.entrypoint),
            env=env,
            volumes=args.volume,
            tmpfs=args.tmpfs,
            workdir=args.workdir,
            user=args.user,
            hostname=args.hostname,
            read_only=args.read_only,
            name=args.name,
        )
        return run_foreground(args.image, options)


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


def parse_env_file(path: Path) -> dict[str, str]:
    """An ``--env-file``: ``K=V`` lines, ``#`` comments and blank lines skipped."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(
            "--env-file", f"cannot read {path}: {exc.strerror}", hint="give a readable file"
        ) from None
    lines = [ln.strip() for ln in text.splitlines()]
    return parse_env([ln for ln in lines if ln and not ln.startswith("#")])


def _entrypoint(value: str | None) -> list[str] | None:
    """As docker: one executable (no word splitting); ``""`` clears the image's."""
    if value is None:
        return None
    return [value] if value else []


def _refuse_limits(args: argparse.Namespace) -> None:
    asked = [
        flag
        for flag, value in (
            ("--memory", args.memory),
            ("--cpus", args.cpus),
            ("--pids-limit", args.pids_limit),
        )
        if value is not None
    ]
    if not asked:
        return
    from envkit.runtime.probes import cgroup_delegation

    check = cgroup_delegation()
    state = f"cgroup v2 delegation here: {'ok' if check.ok else 'missing'} ({check.detail})"
    raise SpecError(
        ", ".join(asked),
        f"resource limits are not implemented yet, and envkit never ignores them silently; {state}",
        hint="drop the option for now"
        + ("" if check.ok else f"; limits will need cgroup delegation: {check.fix}"),
    )


COMMANDS: list[Command] = [RunCommand()]
