"""Lifecycle notifications, appended as JSON lines to ``$ENVKIT_EVENTS_FILE`` (default
``$ENVKIT_HOME/events.jsonl``), and ``envkit events`` to print them.

Exercises the notification hooks (``envkit_service_started``, ``envkit_service_stopped``,
``envkit_build_step_finished``) and the command hook.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from envkit.plugins import Command, hookimpl


def events_file() -> Path:
    """Where events are written."""
    explicit = os.environ.get("ENVKIT_EVENTS_FILE")
    if explicit:
        return Path(explicit)
    from envkit.plugins import envkit_home as home

    return home() / "events.jsonl"


def _append(event: str, **fields: object) -> None:
    line = json.dumps({"event": event, "time": round(time.time(), 3), **fields})
    path = events_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write() of a line shorter than PIPE_BUF on an O_APPEND file: concurrent
    # writers never interleave within a line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@hookimpl
def envkit_service_started(stack: str, service: str) -> None:
    _append("service_started", stack=stack, service=service)


@hookimpl
def envkit_service_stopped(stack: str, service: str, exit_code: int | None) -> None:
    _append("service_stopped", stack=stack, service=service, exit_code=exit_code)


@hookimpl
def envkit_build_step_finished(step: str, key: str, cached: bool, seconds: float) -> None:
    _append("build_step_finished", step=step, key=key, cached=cached, seconds=round(seconds, 3))


class EventsCommand:
    """``envkit events [-n N]``: the last events, one per line."""

    name = "events"
    help = "show the lifecycle events the events plugin recorded"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-n", type=int, default=20, help="how many (default 20)")

    def run(self, args: argparse.Namespace) -> int:
        try:
            lines = events_file().read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines[-args.n :] if args.n > 0 else []:
            event = json.loads(line)
            who = "/".join(str(event[k]) for k in ("stack", "service") if k in event)
            print(event["event"], who or event.get("step", ""))
        return 0


@hookimpl
def envkit_commands() -> Sequence[Command]:
    return [EventsCommand()]
