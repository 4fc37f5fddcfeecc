"""Nothing is left behind: after --rm, a crash, Ctrl-C, and kill -9 of envkit itself
(foreground or the detached supervisor), counted in mounts, processes, namespaces and
dirs; the next envkit command reaps what a killed one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import homes
from tests.integration.test_containers import cli, wait_for

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"


@dataclass(frozen=True)
class Snapshot:
    mounts: int
    user_namespaces: frozenset[str]
    marked: frozenset[int]
    container_dirs: frozenset[str]
    children: frozenset[int]


def snapshot(home: Path, marker: str = "") -> Snapshot:
    """What a leak would change: host mounts below ``home`` (where the runtime dirs
    are), user namespaces held by processes of this ENVKIT_HOME (envkit, its monitors and
    inits: forked, so their environment is the caller's), processes running
    ``sleep MARKER``, our children, and container dirs."""
    namespaces, marked = set(), set()
    ours = f"ENVKIT_HOME={home}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if ours in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                namespaces.add(os.readlink(f"/proc/{entry}/ns/user"))
        except OSError:
            continue
        if marker and cmdline.split(b"\0")[:2] == [b"sleep", marker.encode()]:
            marked.add(int(entry))
    containers = home / "containers"
    dirs = {p.name for p in containers.iterdir()} if containers.exists() else set()
    children = set()
    for task in os.listdir("/proc/self/task"):
        text = Path(f"/proc/self/task/{task}/children").read_text()
        children |= {int(p) for p in text.split()}
    return Snapshot(
        mounts=_mounts_below(home),
        user_namespaces=frozenset(namespaces),
        marked=frozenset(marked),
        container_dirs=frozenset(d for d in dirs if not d.startswith(".")),
        children=frozenset(children),
    )


def _mounts_below(home: Path) -> int:
    """Host mounts at or below ``home`` (other sessions on this host mount elsewhere)."""
    points = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sum(1 for p in points if p == str(home) or p.startswith(f"{home}/"))


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("cleanup"), ref=BUSYBOX)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    yield loaded_home
    from envkit.runtime import state

    for record in state.all_states():
        cli(loaded_home, ["rm", "-f", record.id])


def _settled(home: Path, before: Snapshot, marker: str) -> Snapshot:
    """The snapshot once processes had a moment to die (pdeathsig is asynchronous)."""
    deadline = time.monotonic() + 10
    while True:
        now = snapshot(home, marker)
        if now == before or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def test_rm_and_crash_leave_nothing(home: Path) -> None:
    before = snapshot(home)
    assert cli(home, ["run", "--rm", BUSYBOX, "sh", "-c", "mkdir /x; touch /x/y"]).returncode == 0
    # A crash of a process of the container (pid 1 itself ignores its own signals).
    crash = cli(home, ["run", "--rm", BUSYBOX, "sh", "-c", "sh -c 'kill -SEGV $$'; exit $?"])
    assert crash.returncode == 128 + signal.SIGSEGV
    assert cli(home, ["run", "--rm", BUSYBOX, "no-such-command"]).returncode == 127
    assert snapshot(home) == before


def test_ctrl_c_of_envkit_run(home: Path) -> None:
    marker = "4242.5"
    before = snapshot(home, marker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "envkit", "run", "--rm", BUSYBOX, "sleep", marker],
        stdin=subprocess.DEVNULL,
    )
    wait_for(lambda: len(snapshot(home, marker).marked) >= 1)
    proc.send_signal(signal.SIGINT)  # passed on to sleep, pid 1, which ignores it (docker)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.5)
    proc.send_signal(signal.SIGINT)  # a second Ctrl-C kills it
    assert proc.wait(timeout=20) == 128 + signal.SIGKILL
    assert _settled(home, before, marker) == before


def test_ctrl_c_of_envkit_run_with_init(home: Path) -> None:
    marker = "4242.6"
    before = snapshot(home, marker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "envkit", "run", "--rm", "--init", BUSYBOX, "sleep", marker],
        stdin=subprocess.DEVNULL,
    )
    wait_for(lambda: len(snapshot(home, marker).marked) >= 1)
    proc.send_signal(signal.SIGINT)  # the init passes it on to sleep, which dies of it
    assert proc.wait(timeout=20) == 128 + signal.SIGINT
    assert _settled(home, before, marker) == before


@pytest.mark.parametrize("remove", [True, False], ids=["rm", "keep"])
def test_kill_9_of_envkit_is_reaped(home: Path, remove: bool) -> None:
    from envkit.runtime import state

    marker = f"4243.0{int(remove)}"
    before = snapshot(home, marker)
    argv = [sys.executable, "-m", "envkit", "run", *(["--rm"] if remove else [])]
    argv += [BUSYBOX, "sleep", marker]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wait_for(lambda: any(s.status == state.RUNNING for s in state.all_states()))
    (record,) = state.all_states()
    assert snapshot(home, marker).marked  # the container's sleep runs
    assert record.supervisor == proc.pid
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=20)
    wait_for(lambda: not snapshot(home, marker).marked)  # died with its supervisor

    ps = cli(home, ["ps", "-a"])  # the next envkit command reaps the record
    assert ps.returncode == 0
    if remove:
        assert record.id[:12] not in ps.stdout
        assert _settled(home, before, marker) == before
    else:
        assert "Exited (137)" in ps.stdout
        after = _settled(home, before, marker)
        assert after.container_dirs == before.container_dirs | {record.id}
        assert not (home / "containers" / record.id / "rt").exists()
        assert cli(home, ["rm", record.id]).returncode == 0
        assert _settled(home, before, marker) == before


@pytest.mark.parametrize("remove", [True, False], ids=["rm", "keep"])
def test_kill_9_of_the_monitor_re_adopts(home: Path, remove: bool) -> None:
    """A detached container outlives its monitor: the next command re-adopts it, with
    its log going on, and ``stop`` ends it as usual (docker's live restore)."""
    from envkit.runtime import state

    marker = f"4243.1{int(remove)}"
    before = snapshot(home, marker)
    script = f"i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done & sleep {marker}"
    argv = ["run", "-d", *(["--rm"] if remove else []), BUSYBOX, "sh", "-c", script]
    assert cli(home, argv).returncode == 0
    (record,) = state.all_states()
    wait_for(lambda: "line3" in cli(home, ["logs", record.id]).stdout)
    os.kill(record.supervisor, signal.SIGKILL)
    wait_for(lambda: not state.alive(record.supervisor, record.supervisor_start))
    assert snapshot(home, marker).marked  # the container lives on

    ps = cli(home, ["ps"])  # the next envkit command hands it to a new monitor
    assert record.id[:12] in ps.stdout and "Up" in ps.stdout
    adopted = state.load(record.path())
    assert adopted is not None and adopted.supervisor != record.supervisor
    assert state.alive(adopted.supervisor, adopted.supervisor_start)
    lines = cli(home, ["logs", record.id]).stdout.count("\n")
    wait_for(lambda: cli(home, ["logs", record.id]).stdout.count("\n") > lines + 3)
    assert cli(home, ["exec", record.id, "true"]).returncode == 0

    assert cli(home, ["stop", "-t", "1", record.id]).returncode == 0
    wait_for(lambda: not snapshot(home, marker).marked)
    if remove:
        wait_for(lambda: record.id[:12] not in cli(home, ["ps", "-a"]).stdout)
    else:
        wait_for(lambda: "Exited (137)" in cli(home, ["ps", "-a"]).stdout)
        assert cli(home, ["rm", record.id]).returncode == 0
    assert _settled(home, before, marker) == before
