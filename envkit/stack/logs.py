"""The output of a stack's services, each line prefixed with ``service |``.

Every service's containers write to one json-lines file (``stacks/<name>/logs/<svc>``,
docker's json-file format, :mod:`envkit.runtime.logs`), restarts included, so the log
of a service reads as one stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from envkit.runtime.logs import parse_line
from envkit.stack import state as ss


def tail(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a service log, as text."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return [parse_line(line)[1].rstrip("\n") for line in lines[-count:]]


def service_text(stack: str, service: str) -> str:
    """Everything service ``service`` of stack ``stack`` wrote so far."""
    path = ss.stack_dir(stack) / "logs" / service
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except FileNotFoundError:
        return ""
    return "".join(parse_line(line)[1] for line in lines)


def stream(
    stack: str,
    services: Sequence[str],
    out: TextIO,
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
    poll: float = 0.1,
) -> None:
    """Write the services' output to ``out`` as ``name | line``; with ``follow``, keep
    writing what they add until the stack is down or ``stop`` is set."""
    width = max((len(s) for s in services), default=0)
    offsets = dict.fromkeys(services, 0)
    partial = dict.fromkeys(services, "")
    top = ss.stack_dir(stack) / "logs"
    while True:
        ending = not follow or (stop is not None and stop.is_set()) or not _up(stack)
        wrote = False
        for service in services:
            try:
                with open(top / service, encoding="utf-8", errors="replace") as f:
                    f.seek(offsets[service])
                    chunk = f.read()
                    offsets[service] = f.tell()
            except FileNotFoundError:
                continue
            *lines, partial[service] = (partial[service] + chunk).split("\n")
            for line in lines:
                text = parse_line(line)[1]
                out.write(
                    f"{service.ljust(width)} | {text if text.endswith(chr(10)) else text + chr(10)}"
                )
                wrote = True
        if wrote:
            out.flush()
        if ending:
            return
        time.sleep(poll)


def _up(stack: str) -> bool:
    return (ss.stack_dir(stack) / "state.json").exists()
