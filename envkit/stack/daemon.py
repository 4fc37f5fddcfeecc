"""The detached supervisor: ``up -d`` and ``stack.up()`` run the stack in a process of
its own (double fork, new session), which reports on a pipe whether the stack came up.

The report is one JSON object: ``{"pid": N}`` once every service is ready, or the error
that made ``up`` fail (``{"error", "hint", "dependency", "exit_code"}``), raised again
in the caller as the same kind of error with the same exit code.
"""

from __future__ import annotations

import json
import os
import signal
from typing import TYPE_CHECKING, NoReturn

from envkit.errors import DependencyError, EnvkitError, RuntimeError_

if TYPE_CHECKING:
    from envkit.stack.supervisor import Supervisor


def start_detached(supervisor: Supervisor) -> int:
    """Run ``supervisor`` in a process of its own; return its pid once the stack is up,
    or raise the error that made ``up`` fail."""
    from envkit.runtime.detached import run_detached

    report = run_detached(lambda status_w: _daemon(supervisor, status_w)).decode(errors="replace")
    return pid_from(report)


def pid_from(report: str) -> int:
    """The supervisor's pid from its report, or the error it reported, raised."""
    try:
        answer = json.loads(report)
    except ValueError:
        answer = {"error": "the stack supervisor died while starting the stack"}
    if not isinstance(answer, dict):
        answer = {"error": "the stack supervisor sent a report that is not a JSON object"}
    if "pid" in answer:
        return int(answer["pid"])
    error_class = DependencyError if answer.get("dependency") else RuntimeError_
    error = error_class(str(answer.get("error")), hint=answer.get("hint"))
    code = answer.get("exit_code")
    if isinstance(code, int):  # bad input (a port in use) stays exit 2, as in the foreground
        error.exit_code = code
    raise error


def failure_report(exc: BaseException) -> dict[str, object]:
    """The report of a start that failed with ``exc``."""
    if isinstance(exc, EnvkitError):
        return {
            "error": exc.message,
            "hint": exc.hint,
            "dependency": isinstance(exc, DependencyError),
            "exit_code": exc.exit_code,
        }
    from envkit.settings import storage_error

    home = storage_error(exc) if isinstance(exc, OSError) else None
    if home is not None:
        return {"error": home.message, "hint": home.hint, "exit_code": home.exit_code}
    return {"error": f"{type(exc).__name__}: {exc}"}


def drop_inherited_lock(name: str) -> None:
    """Close this process's copies of stack ``name``'s lock file descriptor.

    The supervisor is forked by ``up`` while ``up`` holds the stack's lock (an ``flock``,
    owned by the open file, which a fork shares). Kept open here, it would hold the lock
    for the supervisor's whole life once ``up`` is killed before it unlocks, and every
    later ``up`` and ``down`` of the stack would wait for it (the kill -9 fault suite
    hit this). Closing the copy leaves the lock to ``up`` alone.
    """
    from envkit.stack import state as ss

    lock = str(ss.stacks_dir() / ".locks" / name)
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if target == lock:
            os.close(int(entry))


def _daemon(supervisor: Supervisor, status_w: int) -> NoReturn:  # pragma: no cover - child
    try:
        drop_inherited_lock(supervisor.stack.name)
        signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
        try:
            supervisor.start()
        except BaseException as exc:
            os.write(status_w, json.dumps(failure_report(exc)).encode())
            os._exit(1)
        os.write(status_w, json.dumps({"pid": os.getpid()}).encode())
        os.close(status_w)
        supervisor.run()
        supervisor.teardown()
    finally:
        os._exit(0)
