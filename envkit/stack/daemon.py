"""The detached supervisor: ``up -d`` and ``stack.up()`` run the stack in a process of
its own, a fresh interpreter (``python -m envkit.stack.daemon``, started by
:func:`envkit.host.detached.spawn_module`), which reports on a pipe how the start goes.

``up`` sends the start request as one JSON object on the daemon's stdin: the stack as
spec data (:mod:`envkit.stack.specjson`, the form a ``replace`` request uses), the image
of each service, the services in start order, the stack file, the owner, the timeout and
the state a killed supervisor left (:func:`request_of`). The daemon answers on fd 3 with
JSON lines: ``{"report": LINE}`` for each service that started (``up`` prints them),
then ``{"pid": N}`` once every service is ready, or the error that made the start fail
(``{"error", "hint", "dependency", "exit_code"}``), raised again in the caller as the
same kind of error with the same exit code.

A fresh interpreter rather than a fork of ``up``: the daemon imports only what holding a
stack needs, and holds nothing of ``up``'s (its heap, its files, the stack's lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from envkit.errors import DependencyError, EnvkitError, RuntimeError_
from envkit.records import asdict
from envkit.settings import storage_error
from envkit.stack import specjson
from envkit.stack import state as ss

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from envkit.spec import Stack
    from envkit.stack.state import StackState
    from envkit.stack.supervisor import Supervisor

#: The daemon's end of the report pipe.
STATUS_FD = 3


def request_of(
    stack: Stack,
    images: Mapping[str, str],
    names: Sequence[str],
    *,
    file: str,
    owner: tuple[int, int] | None,
    timeout: float,
    previous: StackState | None,
) -> dict[str, Any]:
    """The start request of a detached supervisor (plain JSON data)."""
    return {
        "stack": specjson.encode(stack),
        "name": stack.name,
        "images": dict(images),
        "names": list(names),
        "file": file,
        "owner": list(owner) if owner is not None else None,
        "timeout": timeout,
        "previous": asdict(previous) if previous is not None else None,
    }


class Starting:
    """A supervisor daemon on its way: spawned first, so it imports what it needs on
    another core while ``up`` resolves and builds the images; :meth:`start` sends it
    the request, :meth:`close` (without a request) lets it exit."""

    def __init__(self) -> None:
        # lazy: only `up` spawns; keeps host.forking off `down`, which imports this module
        from envkit.host.detached import spawn_module
        from envkit.host.forking import FORK_LOCK

        with FORK_LOCK:  # the pipes' daemon ends are the daemon's alone
            data_r, self._data_w = os.pipe()
            self._status_r, status_w = os.pipe()
            try:
                spawn_module("envkit.stack.daemon", fds={0: data_r, STATUS_FD: status_w})
            except BaseException:
                os.close(self._data_w)
                os.close(self._status_r)
                raise
            finally:
                os.close(data_r)
                os.close(status_w)

    def start(self, request: dict[str, Any], report: Callable[[str], None] | None = None) -> int:
        """Send ``request`` (:func:`request_of`); return the daemon's pid once the stack
        is up, or raise the error that made the start fail. ``report`` gets the lines
        the daemon reports while it starts the services."""
        try:
            with open(self._data_w, "wb") as data:
                data.write(json.dumps(request).encode())
        except BrokenPipeError:  # it died before reading: its report (none) says so below
            pass
        with open(self._status_r, "rb") as status:
            self._status_r = -1
            for line in status:
                answer = _parse(line, "the stack supervisor sent a report that is not JSON")
                if "report" in answer:
                    if report is not None:
                        report(str(answer["report"]))
                    continue
                return _pid_or_raise(answer)
        return _pid_or_raise({"error": DIED})

    def close(self) -> None:
        """Let a daemon that got no request exit (it reads end-of-file)."""
        for fd in (self._data_w, self._status_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._data_w = self._status_r = -1


def start_detached(request: dict[str, Any], report: Callable[[str], None] | None = None) -> int:
    """Start the supervisor of ``request`` (:func:`request_of`) in a process of its own;
    return its pid once the stack is up, or raise the error that made ``up`` fail."""
    starting = Starting()
    try:
        return starting.start(request, report)
    finally:
        starting.close()


#: What ``up`` says when the daemon ended without a report.
DIED = "the stack supervisor died while starting the stack"


def _parse(text: bytes | str, not_json: str) -> dict[str, Any]:
    """A report line as a JSON object; ``{"error": ...}`` when it is not one."""
    try:
        answer = json.loads(text)
    except ValueError:
        return {"error": not_json}
    if not isinstance(answer, dict):
        return {"error": "the stack supervisor sent a report that is not a JSON object"}
    return answer


def pid_from(report: str) -> int:
    """The supervisor's pid from its report, or the error it reported, raised."""
    return _pid_or_raise(_parse(report, DIED))


def _pid_or_raise(answer: dict[str, Any]) -> int:
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
    home = storage_error(exc) if isinstance(exc, OSError) else None
    if home is not None:
        return {"error": home.message, "hint": home.hint, "exit_code": home.exit_code}
    return {"error": f"{type(exc).__name__}: {exc}"}


def _supervisor(
    request: dict[str, Any], report: Callable[[str], None], listening: int | None = None
) -> Supervisor:
    """The supervisor a start request describes; with ``listening`` (the control
    socket), the one that resumes after its hold phase, taking its stack over as its
    state file says."""
    from envkit.stack import holding  # lazy: loaded by main(), as the supervisor
    from envkit.stack.supervisor import Supervisor  # lazy: loaded by main(); `up` never needs it

    owner = request["owner"]
    previous = request["previous"]
    if listening is not None:
        held = ss.load(str(request["name"]))
        previous = asdict(held) if held is not None else None
    return Supervisor(
        specjson.decode_stack(request["stack"], str(request["name"])),
        {str(k): str(v) for k, v in request["images"].items()},
        [str(n) for n in request["names"]],
        file=str(request["file"]),
        owner=(int(owner[0]), int(owner[1])) if owner is not None else None,
        timeout=float(request["timeout"]),
        report=report,
        previous=ss.from_dict(previous) if previous is not None else None,
        hold_after=holding.hold_after() if holding.supported() else None,
        listening=listening,
    )


#: The supervisor's own warnings and failures (its hold program's too), in the stack's dir.
LOG_NAME = "supervisor.log"
#: Past this size the log starts over when a supervisor starts.
LOG_MAX_BYTES = 1 << 20


def _stderr_to(path: Path) -> None:
    """Make ``path`` this process's stderr (appended to; emptied first past
    :data:`LOG_MAX_BYTES`), kept through the hold program's ``exec`` and back: a
    detached supervisor's stderr was /dev/null, so its warnings left no trace."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_MAX_BYTES:
            flags |= os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    os.dup2(fd, 2)  # dup2 leaves fd 2 inheritable
    os.close(fd)


def main() -> NoReturn:  # pragma: no cover - the daemon process
    """The daemon's life: import, read the request, start the stack, report, hold it,
    tear down. No request (``up`` failed before it could send one): exit quietly.

    ``--resume FD``: the hold program (:mod:`envkit.stack.hold`) became this process
    again, the request on stdin, the control socket's listening descriptor ``FD``;
    nobody reads reports, and a ``SIGTERM`` that came meanwhile is pending (blocked)."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    # Imported before the request can arrive: meanwhile ``up`` builds and resolves.
    from envkit.stack import launcher, specjson, supervisor  # noqa: F401

    resume = sys.argv[1:2] == ["--resume"]
    listening = int(sys.argv[2]) if resume else None
    starting = not resume

    def report(line: str) -> None:
        if starting:
            os.write(STATUS_FD, json.dumps({"report": line}).encode() + b"\n")

    try:
        with open(0, "rb", closefd=False) as data:
            raw = data.read()
        if not raw:
            os._exit(0)
        held = _supervisor(json.loads(raw), report, listening)
        if not resume:  # a resumed one has it still: the hold program's exec kept fd 2
            with contextlib.suppress(OSError):  # no log is no reason to fail the stack
                _stderr_to(ss.stack_dir(held.state.name) / LOG_NAME)
        signal.signal(signal.SIGTERM, lambda *_: held.request_stop())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        held.start()
    except BaseException as exc:
        failure = json.dumps(failure_report(exc)).encode() + b"\n"
        os.write(2 if resume else STATUS_FD, failure)
        os._exit(1)
    try:
        if not resume:
            starting = False
            os.write(STATUS_FD, json.dumps({"pid": os.getpid()}).encode() + b"\n")
            os.close(STATUS_FD)
        held.run()
        held.teardown()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
