"""The process model of issue 15: one monitor -> the command, shared by every detached
container of a home; kill -9 of the monitor at random moments loses no container; many
run -d/stop/rm cycles leave no process, mount, fd or file behind."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import homes
from tests.integration.test_containers import cli, wait_for

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("process-model"), ref=BUSYBOX)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    yield loaded_home
    from envkit.runtime import state

    for record in state.all_states():
        cli(loaded_home, ["rm", "-f", record.id])
    wait_for(lambda: not _monitors(loaded_home), timeout=15)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _monitors(home: Path) -> list[int]:
    """The container monitors of ``home`` that run."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if "envkit.container.monitor" not in _cmdline(int(entry)):
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"ENVKIT_HOME={home}".encode() in environ:
            found.append(int(entry))
    return found


def test_detached_containers_share_one_monitor_that_is_their_parent(home: Path) -> None:
    from envkit.runtime import state

    for i in range(3):
        assert cli(home, ["run", "-d", "--name", f"pm{i}", BUSYBOX, "sleep", "300"]).returncode == 0
    records = state.all_states()
    assert len({r.supervisor for r in records}) == 1
    (monitor,) = _monitors(home)
    for record in records:
        assert record.supervisor == monitor
        assert _ppid(record.pid) == monitor  # no intermediate process stays
        assert _cmdline(record.pid).startswith("sleep 300")
    assert sorted(homes.envkit_processes(home)) == [monitor]
    assert cli(home, ["rm", "-f", "pm0", "pm1", "pm2"]).returncode == 0
    wait_for(lambda: not _monitors(home), timeout=15)  # it leaves once it holds nothing


def test_reparented_start_leaves_no_intermediate(home: Path) -> None:
    """``spawn.start(reparent=True)``: the caller (a stack supervisor) is pid 1's parent."""
    script = textwrap.dedent(
        f"""
        import os, sys
        import envkit
        from envkit.runtime import spawn
        from envkit.container.options import RunOptions
        from envkit.container.prepare import prepare
        prepared = prepare({BUSYBOX!r}, RunOptions(cmd=["sh", "-c", "exit 5"]))
        engine = spawn.start(prepared.config, runtime_dir=prepared.state.path("rt"),
                             reparent=True)
        stat = open(f"/proc/{{engine.pid}}/stat").read()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        code = engine.wait()
        prepared.abandon()
        print(ppid == os.getpid(), code)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "5"]


def test_kill_9_of_the_monitor_at_random_moments(home: Path) -> None:
    """20 times: start containers while the monitor is killed at a random moment; every
    container is then either running under a live monitor or exited with its code."""
    from envkit.runtime import state

    rng = random.Random(15)
    started = 0
    for round_ in range(20):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "envkit", "run", "-d", BUSYBOX, "sleep", KILL9_SLEEP],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(2)
        ]
        time.sleep(rng.uniform(0.0, 0.4))
        for pid in _monitors(home):
            with contextlib.suppress(ProcessLookupError):  # it may just have left, idle
                os.kill(pid, signal.SIGKILL)
        printed = [out.strip() for out, _ in (proc.communicate(timeout=60) for proc in procs)]
        reported = [out for out, proc in zip(printed, procs, strict=True) if proc.returncode == 0]
        started += len(reported)
        assert cli(home, ["ps", "-a"]).returncode == 0  # the next command settles it
        records = state.all_states()
        # No container that `run -d` reported is lost.
        assert set(reported) <= {r.id for r in records}, (round_, reported, records)
        for record in records:
            if record.status == state.RUNNING:
                assert state.alive(record.pid, record.pid_start), round_
                assert state.alive(record.supervisor, record.supervisor_start), round_
                # Its parent: the monitor that started it, or (that one killed, the one that
                # adopted it now watching) the reaper that took the orphan, which also
                # reaped the detached monitor: pid 1 or a subreaper such as systemd --user.
                reaper = _ppid(record.supervisor)
                assert _ppid(record.pid) in (record.supervisor, reaper), round_
            else:
                assert record.exit_code is not None, round_
        # every one can be stopped and removed
        ids = [r.id for r in state.all_states()]
        if ids:
            assert cli(home, ["rm", "-f", *ids]).returncode == 0
        assert not [r for r in state.all_states()]
        left = _sleepers(KILL9_SLEEP)
        assert not left, (round_, [_described(pid) for pid in left])
    assert started, "no `run -d` succeeded: nothing was checked"


#: The command of the kill -9 loop's containers: a duration of its own, so that a
#: `sleep` another test left (or is still tearing down) is not taken for one of them.
KILL9_SLEEP = "301"


def _sleepers(duration: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _cmdline(int(entry)) == f"sleep {duration} ":
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _described(pid: int) -> str:
    """A leftover process for the failure message: parent, state, age."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - int(fields[19]) / ticks
    except (OSError, ValueError, IndexError):
        return f"{pid}: gone"
    return f"{pid}: ppid {fields[1]}, state {fields[0]}, {age:.1f} s old"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _mounts_below(home: Path) -> int:
    points = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sum(1 for p in points if p == str(home) or p.startswith(f"{home}/"))


def test_run_d_stop_rm_cycles_leave_nothing(home: Path) -> None:
    import envkit
    from envkit.runtime import state

    for _ in range(2):  # warm up: from its second start a process keeps a user namespace
        envkit.run(BUSYBOX, ["true"], detach=True, remove=True).wait(timeout=30)
    wait_for(lambda: not _monitors(home), timeout=15)
    fds, mounts = _fds(), _mounts_below(home)
    files = sorted(p.relative_to(home) for p in (home / "containers").rglob("*"))
    for _ in range(100):
        container = envkit.run(BUSYBOX, ["sleep", "300"], detach=True)
        container.kill()  # what stop does after its grace period (sleep ignores SIGTERM)
        assert container.wait(timeout=10) == 128 + signal.SIGKILL
        container.remove()
    wait_for(lambda: not _monitors(home), timeout=15)
    assert _fds() == fds
    assert _mounts_below(home) == mounts
    assert not state.all_states()
    assert not homes.envkit_processes(home)
    left = sorted(p.relative_to(home) for p in (home / "containers").rglob("*"))
    assert [p for p in left if p not in files and p.parts[1] != ".exits"] == []


def test_stop_of_a_pid_1_without_a_sigterm_handler_kills_at_once(home: Path) -> None:
    """The kernel drops SIGTERM for such a pid 1 (``sleep``): waiting out the grace period
    would change nothing, so ``stop`` gives SIGKILL at once (docker's result, 137, without
    its wait). A command that handles SIGTERM still gets it."""
    import envkit

    with envkit.run(BUSYBOX, ["sleep", "300"], detach=True) as plain:
        wait_for(lambda: _ignores_term(plain.pid))  # once asleep (before: the grace period)
        assert plain.stop(timeout=60) == 128 + signal.SIGKILL
    trap = "trap 'exit 7' TERM; while true; do sleep 0.05; done"
    with envkit.run(BUSYBOX, ["sh", "-c", trap], detach=True) as handled:
        wait_for(lambda: _catches(handled.pid, signal.SIGTERM))  # the trap is set
        wait_for(lambda: not _ignores_term(handled.pid))
        assert handled.stop(timeout=60) == 7


def _catches(pid: int, sig: int) -> bool:
    """Whether ``pid`` has a handler for ``sig`` (its bit in SigCgt of /proc/PID/status).
    Every status file has a SigCgt line: the bit is what tells a trap is set."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def _ignores_term(pid: int) -> bool:
    from envkit.runtime.state import init_ignores

    return init_ignores(pid, signal.SIGTERM)


#: Shared libraries a running stack's long-lived processes must not hold: OpenSSL
#: (hashlib: ~1.4 MB of each holder's memory) and the compression libraries that
#: shutil loads. Names are hashed with the interpreter's own SHA-256 instead, and
#: shutil is imported only where a stack ends or a volume is seeded.
NOT_HELD_BY_A_STACK = ("libcrypto", "_hashlib", "_lzma", "_bz2")

NETWORKED_STACK = """
from envkit import Network, Service, Stack

net = Network("lean")
stack = Stack("lean", services=[
    Service(f"s{i}", image="busybox:1", command=["sleep", "600"], networks=[net])
    for i in range(2)
])
"""


def test_a_running_stack_holds_no_openssl_or_compression_library(
    home: Path, tmp_path: Path
) -> None:
    """What a 10-service stack costs is mostly its supervisor and the network daemon
    (issue 15's memory figure): neither may keep libraries only a moment of their start
    needed. The netlink worker (a child of the network daemon, gone when idle) is not
    looked at."""
    (tmp_path / "stack.py").write_text(NETWORKED_STACK)
    up = homes.cli(home, ["up", "-d"], cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    try:
        mine = homes.envkit_processes(home)
        held = [p for p in mine if _ppid(p) not in mine]  # not a helper's child
        commands = [_cmdline(p) for p in held]
        assert any("envkit.stack.daemon" in c for c in commands), commands
        assert any("envkit.network.netd" in c for c in commands), commands
        for pid in held:
            maps = Path(f"/proc/{pid}/maps").read_text()
            loaded = [lib for lib in NOT_HELD_BY_A_STACK if lib in maps]
            assert loaded == [], (_cmdline(pid), loaded)
    finally:
        assert cli(home, ["down", "-p", "lean"]).returncode == 0
