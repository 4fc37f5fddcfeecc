"""The hold phase of a detached stack supervisor (issue 15, docs/dev/stack.md): once
its stack is idle the supervisor becomes the small hold program (same pid, the
containers still its children), and any event brings the full supervisor back with
nothing lost: logs written meanwhile, real exit codes, restart policies, control
requests, ``SIGTERM``, ``down``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import homes
from tests.integration.test_containers import wait_for

pytestmark = pytest.mark.rootless

HOLD = {"ENVKIT_STACK_HOLD_AFTER": "0.3"}

STACK = """
from envkit import Service, Stack

stack = Stack("held", services=[
    Service("ticker", image="busybox:1",
            command=["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"]),
    Service("crash", image="busybox:1", command=["sh", "-c", "sleep 2; echo bye; exit 3"],
            restart="on-failure:1"),
    Service("idle", image="busybox:1", command=["sleep", "617"]),
])
"""


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("stack-hold"))


@pytest.fixture
def stack_dir(loaded_home: Path, tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "stack.py").write_text(STACK)
    yield tmp_path
    homes.cli(loaded_home, ["down", "-p", "held"])
    # Nothing of the home stays: no supervisor, no network holder or daemon.
    wait_for(lambda: homes.envkit_processes(loaded_home) == [], timeout=15)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _state(home: Path) -> dict[str, object]:
    data = json.loads((home / "stacks" / "held" / "state.json").read_text())
    assert isinstance(data, dict)
    return data


def _supervisor(home: Path) -> int:
    pid = _state(home)["supervisor"]
    assert isinstance(pid, int)
    return pid


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie too). Not an empty cmdline: it is
    also empty for an instant of an exec."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _held(pid: int) -> bool:
    return "envkit/stack/hold.py" in _cmdline(pid)


def _children(pid: int) -> set[int]:
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        found |= {int(p) for p in text.split()}
    return found


def _up(home: Path, where: Path) -> int:
    done = homes.cli(home, ["up", "-d"], cwd=where, env=HOLD)
    assert done.returncode == 0, done.stderr
    pid = _supervisor(home)
    wait_for(lambda: _held(pid), timeout=20)
    return pid


def test_a_held_stack_keeps_its_logs_exit_codes_and_restarts(
    loaded_home: Path, stack_dir: Path
) -> None:
    pid = _up(loaded_home, stack_dir)
    services = _state(loaded_home)["services"]
    assert isinstance(services, dict)
    records = [loaded_home / "containers" / s["container"] for s in services.values()]
    pids = {json.loads((r / "state.json").read_text())["pid"] for r in records if r.name}
    # The containers stay the children of the process that holds them.
    assert pids <= _children(pid), (pids, _children(pid))

    # crash exits with 3 while held, is restarted once (on-failure:1), exits 3 again:
    # real exit codes, not the "lost" code of a container nobody waited for.
    def crash_done() -> bool:
        crash = _state(loaded_home)["services"]["crash"]  # type: ignore[index]
        return bool(crash["status"] == "exited" and crash["restarts"] == 1)

    wait_for(crash_done, timeout=30)
    assert _state(loaded_home)["services"]["crash"]["exit_code"] == 3  # type: ignore[index]
    wait_for(lambda: _held(pid), timeout=20)

    # A request wakes it; it answers with the whole state, then holds again.
    ps = homes.cli(loaded_home, ["stack", "ps", "-p", "held"])
    assert ps.returncode == 0, ps.stderr
    assert "exited (3)" in ps.stdout and ps.stdout.count("running") == 2, ps.stdout
    done = homes.cli(loaded_home, ["stack", "exec", "-p", "held", "idle", "echo", "inside"])
    assert done.returncode == 0 and done.stdout == "inside\n", done.stderr
    wait_for(lambda: _held(pid), timeout=20)
    assert _supervisor(loaded_home) == pid

    # Every line the ticker wrote through the holds and resumes, once, in order.
    logs = homes.cli(loaded_home, ["stack", "logs", "-p", "held", "ticker"])
    numbers = [int(line.split()[-1]) for line in logs.stdout.splitlines()]
    assert len(numbers) > 20 and numbers == list(range(1, len(numbers) + 1)), numbers
    bye = homes.cli(loaded_home, ["stack", "logs", "-p", "held", "crash"]).stdout
    assert bye.count("bye") == 2, bye

    down = homes.cli(loaded_home, ["down", "-p", "held"])
    assert down.returncode == 0, down.stderr
    assert not (loaded_home / "stacks" / "held").exists()
    wait_for(lambda: _gone(pid), timeout=10)


def test_sigterm_to_a_held_supervisor_stops_the_stack(loaded_home: Path, stack_dir: Path) -> None:
    pid = _up(loaded_home, stack_dir)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not (loaded_home / "stacks" / "held").exists(), timeout=30)
    wait_for(lambda: _gone(pid), timeout=10)
    assert all("sleep 617" not in _cmdline(int(p)) for p in os.listdir("/proc") if p.isdigit())


def test_kill_9_of_a_held_supervisor_then_up_adopts_the_containers(
    loaded_home: Path, stack_dir: Path
) -> None:
    pid = _up(loaded_home, stack_dir)
    idle = _state(loaded_home)["services"]["idle"]["container"]  # type: ignore[index]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _gone(pid), timeout=10)
    time.sleep(0.2)
    again = homes.cli(loaded_home, ["up", "-d"], cwd=stack_dir, env=HOLD)
    assert again.returncode == 0, again.stderr
    assert "re-adopted" in again.stdout + again.stderr
    assert _state(loaded_home)["services"]["idle"]["container"] == idle  # type: ignore[index]


def test_the_owner_of_a_held_stack_ending_stops_it(loaded_home: Path, stack_dir: Path) -> None:
    """``stack.up()`` ties the stack to the calling process: it goes down when that
    process is gone, held or not (the hold program watches the owner's pidfd)."""
    script = stack_dir / "owner.py"
    script.write_text(
        "import sys, time\n"
        f"exec(compile({STACK!r}, 'stack', 'exec'))\n"
        "stack.up()\n"
        "print('up', flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "ENVKIT_HOME": str(loaded_home), **HOLD}
    with subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE) as owner:
        try:
            assert owner.stdout is not None and owner.stdout.readline() == b"up\n"
            pid = _supervisor(loaded_home)
            wait_for(lambda: _held(pid), timeout=20)
            owner.kill()
            owner.wait()
            wait_for(lambda: not (loaded_home / "stacks" / "held").exists(), timeout=30)
            wait_for(lambda: _gone(pid), timeout=10)
            # Its network holder and daemon go with it, as after `down`, not at the
            # home's next command.
            wait_for(lambda: homes.envkit_processes(loaded_home) == [], timeout=15)
        finally:
            if owner.poll() is None:
                owner.kill()


def test_the_supervisor_and_its_hold_program_write_their_errors_to_the_stack_dir(
    loaded_home: Path, stack_dir: Path
) -> None:
    """A detached supervisor's stderr was /dev/null: a hold program that failed (and
    resumed at once, to try again later) or a supervisor's warning left no trace. Now
    both write to ``stacks/<name>/supervisor.log``, through the hold's exec too."""
    pid = _up(loaded_home, stack_dir)
    log = loaded_home / "stacks" / "held" / "supervisor.log"
    wait_for(lambda: _held(pid), timeout=20)
    assert Path(os.readlink(f"/proc/{pid}/fd/2")) == log
    assert log.exists()
