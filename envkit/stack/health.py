"""Health checks: docker's model, run by the stack supervisor.

The test runs in the container (as ``docker exec`` would) at once when the container
starts, then every ``interval`` seconds, or every ``start_interval`` seconds while the
container is still ``starting`` and less than ``start_period`` has passed since its start
(docker's ``getInterval`` in moby's daemon/health.go); a run longer than ``timeout`` is killed and
fails. ``retries`` failures in a row make the container ``unhealthy``; a success makes it
``healthy``. While the container has never been healthy, failures of runs that began
within ``start_period`` of the start do not count, but a success there does (docker's
``handleProbeResult``), so a slow starter is not declared unhealthy too early; once it
was healthy, every failure counts.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Sequence

from envkit.container.execute import start_exec
from envkit.errors import EnvkitError
from envkit.records import Record
from envkit.runtime.state import ContainerState
from envkit.spec import Healthcheck

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
#: How much of a check's output is kept (docker keeps 4 KiB).
OUTPUT_LIMIT = 4096


def argv(check: Healthcheck) -> list[str]:
    """The command a check runs: exec form as is, ``CMD-SHELL`` through ``/bin/sh -c``."""
    kind, *rest = check.test
    return ["/bin/sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest


class HealthTracker(Record):
    """The status of one container's checks, fed with each result."""

    check: Healthcheck
    started: float
    status: str = STARTING
    failures: int = 0  #: failing runs in a row that count
    last_output: str = ""

    def record(self, ok: bool, output: str, now: float) -> str:
        """Take the result of one run (that began at ``now``, as docker times it); the
        new status."""
        self.last_output = output[-OUTPUT_LIMIT:]
        if ok:
            self.failures, self.status = 0, HEALTHY
        elif self.status != STARTING or now - self.started >= self.check.start_period:
            self.failures += 1
            if self.failures >= self.check.retries:
                self.status = UNHEALTHY
        return self.status

    def interval(self, now: float) -> float:
        """The wait between runs as of ``now``: ``start_interval`` while the status is
        still ``starting`` and ``start_period`` has not passed since the start, else
        ``interval`` (docker's rule: without a ``start_period`` there is no start interval)."""
        if self.status == STARTING and now - self.started < self.check.start_period:
            return self.check.start_interval
        return self.check.interval

    def next_run(self, last_run_started: float | None, now: float | None = None) -> float:
        """When the next run is due (monotonic seconds): at once for the first, then one
        :meth:`interval` (as of ``now``, when the last result came in; by default when the
        last run began) after the last run began."""
        if last_run_started is None:
            return self.started
        when = last_run_started if now is None else now
        return last_run_started + self.interval(when)


def run_once(record: object, command: Sequence[str], timeout: float) -> tuple[bool, str]:
    """Run ``command`` in the container of ``record`` (a
    :class:`envkit.runtime.state.ContainerState`); whether it exited 0 within
    ``timeout`` seconds, and its output (or why it failed)."""
    assert isinstance(record, ContainerState)
    read_fd, write_fd = os.pipe()
    try:
        with open(os.devnull, "rb") as devnull:
            process = start_exec(record, command, stdio=(devnull.fileno(), write_fd, write_fd))
    except EnvkitError as exc:
        os.close(read_fd)
        return False, exc.message
    finally:
        os.close(write_fd)
    output = bytearray()
    deadline = time.monotonic() + timeout
    timed_out = False
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([pipe], [], [], left)
            if not ready:
                continue
            chunk = pipe.read(65536)
            if not chunk:
                break
            output += chunk
            del output[:-OUTPUT_LIMIT]
    if timed_out:
        process.kill(signal.SIGKILL)
        process.wait()
        return False, f"health check exceeded its timeout of {timeout:g} s"
    code = process.wait()
    text = output.decode(errors="replace") + process.error
    return code == 0, text
