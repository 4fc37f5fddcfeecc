"""Adopting a lost supervisor's containers, without namespaces: the decision for each
service (docker's daemon-restart rules, :func:`envkit.stack.recovery.plan`), and the
mechanics with plain processes: output pipes that outlive their reader, and waiting for
a process that is not a child."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envkit.stack import launcher, recovery
from envkit.stack import state as ss
from envkit.stack.policy import RestartManager, RestartPolicy


def test_a_container_pipe_survives_its_reader(tmp_path: Path) -> None:
    reader, both = launcher._fifo(tmp_path / "c.out")
    os.write(both, b"before\n")
    os.close(reader)  # the supervisor is killed: no reader any more
    os.write(both, b"meanwhile\n")  # no EPIPE, no SIGPIPE: the writer also reads
    again = launcher._open_reader(tmp_path / "c.out")  # a new supervisor
    try:
        assert os.read(again, 100) == b"before\nmeanwhile\n"
        os.close(both)  # the container exits: end of file for the new reader
        assert os.read(again, 100) == b""
    finally:
        os.close(again)


def test_a_pipe_reopened_after_its_writer_died_still_ends(tmp_path: Path) -> None:
    """A container that exited while held (its status not collected yet): the new
    reader must see what it wrote, then the end of file, as select reports it (the
    pump waits in select). Linux reports no hang-up to a reader opened with no writer
    until a writer has come and gone; before the fix the pump waited forever."""
    path = tmp_path / "c.out"
    os.mkfifo(path)
    held = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # the hold program's reader
    container = os.open(path, os.O_WRONLY)
    os.write(container, b"last words\n")
    os.close(container)  # it exited: no writer left, its output still in the pipe
    again = launcher._open_reader(path)  # the resumed supervisor
    os.close(held)
    try:
        ready, _, _ = select.select([again], [], [], 2)
        assert ready == [again]
        assert os.read(again, 100) == b"last words\n"
        ready, _, _ = select.select([again], [], [], 2)
        assert ready == [again], "no end of file reported: the pump would wait forever"
        assert os.read(again, 100) == b""
    finally:
        os.close(again)


def test_wait_exit_of_a_process_that_is_not_a_child() -> None:
    from envkit.runtime.state import process_start

    # A grandchild: re-parented away from this process once its parent exits.
    code = (
        "import subprocess as s; "
        "print(s.Popen(['sleep', '30'], stdout=s.DEVNULL, stderr=s.DEVNULL).pid)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    start = process_start(pid)
    assert start is not None
    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    launcher.wait_exit(pid, start)
    assert time.monotonic() - began < 10


def test_wait_exit_returns_at_once_for_a_pid_that_is_gone() -> None:
    gone = 2**22 + 12345  # above the kernel's largest pid_max: never a live process
    assert not os.path.exists(f"/proc/{gone}")
    began = time.monotonic()
    waiter = threading.Thread(target=launcher.wait_exit, args=(gone, 1), daemon=True)
    waiter.start()
    waiter.join(timeout=10)  # a wait that does not notice would block for an hour
    assert not waiter.is_alive()
    assert time.monotonic() - began < 1


# -- what a new supervisor does with each service (docker's daemon restart) ---------------


def _previous(**services: tuple[str, str, int | None]) -> ss.StackState:
    """service=(status, container, exit code); spec keys "k"."""
    return ss.StackState(
        name="s",
        order=list(services),
        services={
            n: ss.ServiceState(status=st, container=c, exit_code=code, spec_key="k")
            for n, (st, c, code) in services.items()
        },
    )


@pytest.mark.parametrize(
    ("status", "container", "code", "policy", "alive", "changed", "expected"),
    [
        # still running
        ("running", "c1", None, "no", True, False, {"adopt"}),
        ("running", "c1", None, "always", True, True, {"discard", "start"}),
        # exited while nobody watched: lost; restarted as the policy says
        ("running", "c1", None, "no", False, False, {"lost"}),
        ("running", "c1", None, "on-failure", False, False, {"lost", "start"}),
        ("restarting", "c1", 1, "always", False, False, {"lost", "start"}),
        ("running", "c1", None, "unless-stopped", False, False, {"lost", "start"}),
        # exited with a code under the old supervisor, no restart was due
        ("exited", "c1", 0, "on-failure", False, False, {"exited"}),
        # stopped by the user: `always` comes back, `unless-stopped` does not
        ("stopped", "", None, "always", False, False, {"start"}),
        ("stopped", "", None, "unless-stopped", False, False, {"stopped"}),
        ("stopped", "", None, "no", False, False, {"stopped"}),
        # never started (the supervisor died while starting), or changed
        ("created", "", None, "no", False, False, {"start"}),
        ("exited", "c1", 0, "no", False, True, {"start"}),
    ],
)
def test_plan(
    status: str,
    container: str,
    code: int | None,
    policy: str,
    alive: bool,
    changed: bool,
    expected: set[str],
) -> None:
    previous = _previous(web=(status, container, code))
    managers = {"web": RestartManager(RestartPolicy.parse(policy))}
    keys = {"web": "other" if changed else "k"}
    plan = recovery.plan(previous, ["web"], keys, managers, {"web"} if alive else set())
    found = {kind for kind in plan.FIELDS if "web" in getattr(plan, kind)}
    assert found == expected


def test_plan_starts_new_services_and_discards_those_that_left() -> None:
    previous = _previous(old=("running", "c1", None), gone=("running", "c2", None))
    managers = {n: RestartManager(RestartPolicy.parse("no")) for n in ("old", "new")}
    plan = recovery.plan(
        previous, ["new", "old"], {"new": "k", "old": "k"}, managers, {"old", "gone"}
    )
    assert plan.start == ["new"] and plan.adopt == ["old"] and plan.discard == ["gone"]
