"""Containers with state on disk: run -d, ps, logs, exec, stop, kill, rm, -t, and the
Python Container API, each used from another process than the one that started it."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import envkit
from envkit.container import handle as containers
from envkit.errors import EnvkitError, RuntimeError_
from envkit.runtime import caps, seccomp
from tests.integration import homes

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"
LOOP = "echo started; echo to-err >&2; while true; do sleep 0.1; done"


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("containers"), ref=BUSYBOX)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    yield loaded_home
    from envkit.runtime import state

    for record in state.all_states():
        cli(loaded_home, ["rm", "-f", record.id])
    assert state.all_states() == []


def cli(
    home: Path, argv: list[str], timeout: float = 60, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return homes.cli(home, argv, timeout=timeout, stdin=stdin)


def wait_for(predicate: object, timeout: float = 10) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_detached_container_from_other_processes(home: Path) -> None:
    # --init: sh as pid 1 would ignore stop's SIGTERM, as in docker (test_runtime_core)
    done = cli(home, ["run", "-d", "--init", "--name", "web", BUSYBOX, "sh", "-c", LOOP])
    assert done.returncode == 0, done.stderr
    cid = done.stdout.strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)

    ps = cli(home, ["ps"])
    assert cid[:12] in ps.stdout and "web" in ps.stdout and "Up " in ps.stdout
    assert cli(home, ["ps", "-q"]).stdout.split() == [cid[:12]]

    wait_for(lambda: "started" in cli(home, ["logs", "web"]).stdout)
    logs = cli(home, ["logs", cid[:6]])  # an id prefix works too
    assert logs.stdout == "started\n" and logs.stderr == "to-err\n"
    assert cli(home, ["logs", "--tail", "1", "web"]).stderr == "to-err\n"

    exe = cli(
        home, ["exec", "-e", "X=1", "-w", "/tmp", "web", "sh", "-c", "echo $X $(pwd); exit 4"]
    )
    assert (exe.returncode, exe.stdout) == (4, "1 /tmp\n")
    who = cli(home, ["exec", "-u", "nobody", "web", "id", "-u"])
    assert who.stdout.strip() == "65534"
    procs = cli(home, ["exec", "web", "sh", "-c", "cat /proc/1/status | head -1; hostname"])
    assert procs.stdout.split("\n")[1] == cid[:12]  # the container's uts namespace
    missing = cli(home, ["exec", "web", "no-such-command"])
    assert missing.returncode == 127 and "no-such-command" in missing.stderr

    refused = cli(home, ["rm", "web"])
    assert refused.returncode == 1 and "is running" in refused.stderr
    dup = cli(home, ["run", "-d", "--name", "web", BUSYBOX, "true"])
    assert dup.returncode == 2 and "already in use" in dup.stderr

    stop = cli(home, ["stop", "-t", "5", "web"])
    assert stop.returncode == 0 and stop.stdout == "web\n"
    ps_all = cli(home, ["ps", "-a"]).stdout
    assert "Exited (143)" in ps_all  # sh died of the SIGTERM
    assert cli(home, ["ps", "-q"]).stdout == ""
    gone = cli(home, ["exec", "web", "true"])
    assert gone.returncode == 1 and "not running" in gone.stderr
    assert cli(home, ["rm", "web"]).returncode == 0
    assert cli(home, ["ps", "-aq"]).stdout == ""
    assert not (home / "containers" / cid).exists()


def test_kill_signal_and_forced_rm(home: Path) -> None:
    trap = "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done"
    cid = cli(home, ["run", "-d", BUSYBOX, "sh", "-c", trap]).stdout.strip()
    wait_for(lambda: "ready" in cli(home, ["logs", cid]).stdout)
    assert cli(home, ["kill", "-s", "USR1", cid[:10]]).returncode == 0
    wait_for(lambda: "got-usr1" in cli(home, ["logs", cid]).stdout)
    assert cli(home, ["rm", "-f", cid]).returncode == 0
    assert cli(home, ["ps", "-aq"]).stdout == ""
    assert cli(home, ["kill", "nope"]).returncode == 1


def test_foreground_run_keeps_state_until_rm(home: Path) -> None:
    done = cli(home, ["run", "--name", "once", BUSYBOX, "sh", "-c", "echo out; exit 3"])
    assert (done.returncode, done.stdout) == (3, "out\n")
    assert "Exited (3)" in cli(home, ["ps", "-a"]).stdout
    assert cli(home, ["rm", "once"]).returncode == 0
    assert cli(home, ["run", "--rm", BUSYBOX, "true"]).returncode == 0
    assert cli(home, ["ps", "-aq"]).stdout == ""


def test_logs_follow_ends_with_the_container(home: Path) -> None:
    script = "for i in 1 2 3; do echo line $i; sleep 0.2; done"
    cid = cli(home, ["run", "-d", BUSYBOX, "sh", "-c", script]).stdout.strip()
    followed = cli(home, ["logs", "-f", cid], timeout=20)
    assert followed.stdout == "line 1\nline 2\nline 3\n"
    assert "Exited (0)" in cli(home, ["ps", "-a"]).stdout


def test_output_without_newlines_shows_in_the_log_while_it_runs(home: Path) -> None:
    """As docker's json-file, in 16 KiB pieces: before, the monitor kept the whole line
    in memory (growing without bound) and the log stayed empty until the exit."""
    script = "while true; do echo -n xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"
    cid = cli(home, ["run", "-d", BUSYBOX, "sh", "-c", script]).stdout.strip()
    wait_for(lambda: len(cli(home, ["logs", cid]).stdout) >= 2 * 16384, timeout=30)
    text = cli(home, ["logs", cid]).stdout
    assert set(text) == {"x"}
    cli(home, ["rm", "-f", cid])


def test_run_with_tty_resize_and_ctrl_c(home: Path) -> None:
    """-it under a pty as a terminal would give it: tty inside, window size, Ctrl-C."""
    script = "tty; stty size; echo ready; sleep 30; echo not-reached"
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes envkit run -it
        os.environ["ENVKIT_HOME"] = str(home)
        os.execv(
            sys.executable,
            [sys.executable, "-m", "envkit", "run", "-it", "--rm", BUSYBOX, "sh", "-c", script],
        )
    import fcntl

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    before = termios.tcgetattr(master)
    output = _read_until(master, b"ready")
    assert b"/dev/pts/0" in output  # a terminal from the container's own devpts
    assert b"33 101" in output
    os.write(master, b"\x03")  # Ctrl-C: the container's terminal turns it into SIGINT
    output += _read_until(master, None)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130
    assert b"not-reached" not in output
    assert termios.tcgetattr(master)[3] == before[3]  # local modes restored
    os.close(master)


def test_exec_with_tty(home: Path) -> None:
    cid = cli(
        home, ["run", "-d", BUSYBOX, "sh", "-c", "while true; do sleep 0.1; done"]
    ).stdout.strip()
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover
        os.environ["ENVKIT_HOME"] = str(home)
        os.execv(
            sys.executable,
            [sys.executable, "-m", "envkit", "exec", "-t", cid, "sh", "-c", "tty; exit 6"],
        )
    output = _read_until(master, None)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 6
    assert b"/dev/pts/" in output
    os.close(master)


def _read_until(fd: int, marker: bytes | None, timeout: float = 20) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker is None or marker not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {data!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            if marker is None:
                return data
            raise AssertionError(f"EOF before {marker!r}; got {data!r}")
        data += chunk
    return data


def test_run_named_volumes_persist_seed_and_are_refused_to_rm_while_used(
    home: Path, tmp_path: Path
) -> None:
    """docker's ``run -v NAME:/path``: the local volume NAME is made on first use,
    seeded from the image's files at the path when empty, kept after ``--rm``, and
    ``volume rm`` refuses it while a container refers to it; ``-v ./dir:/x`` is a host
    path relative to the caller's directory (docker's CLI since 23.0)."""
    first = cli(
        home, ["run", "--rm", "-v", "rundata:/data", BUSYBOX, "sh", "-c", "echo one > /data/f"]
    )
    assert first.returncode == 0, first.stderr
    again = [
        "run",
        "--rm",
        "-v",
        "rundata:/data",
        BUSYBOX,
        "sh",
        "-c",
        "echo two >> /data/f; cat /data/f",
    ]
    done = cli(home, again)
    assert done.stdout.split() == ["one", "two"], done
    seeded = cli(home, ["run", "--rm", "-v", "runbin:/bin", BUSYBOX, "ls", "/bin/busybox"])
    assert seeded.returncode == 0 and "/bin/busybox" in seeded.stdout, seeded
    held = cli(
        home, ["run", "-d", "--name", "holder", "-v", "rundata:/data", BUSYBOX, "sleep", "60"]
    )
    assert held.returncode == 0, held.stderr
    refused = cli(home, ["volume", "rm", "rundata"])
    assert refused.returncode == 2 and "in use by container 'holder'" in refused.stderr
    assert cli(home, ["rm", "-f", "holder"]).returncode == 0
    assert cli(home, ["volume", "rm", "rundata", "runbin"]).returncode == 0
    assert cli(home, ["volume", "ls", "-q"]).stdout.split() == []
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "note.txt").write_text("relative\n")
    relative = homes.cli(
        home, ["run", "--rm", "-v", "./here:/x:ro", BUSYBOX, "cat", "/x/note.txt"], cwd=tmp_path
    )
    assert relative.stdout == "relative\n", relative
    bad = cli(home, ["run", "--rm", "-v", "bad name:/x", BUSYBOX, "true"])
    assert bad.returncode == 2 and "volume name" in bad.stderr, bad


def test_python_api(home: Path) -> None:
    with envkit.run(BUSYBOX, ["sh", "-c", "echo hi; echo err >&2"]) as c:
        assert c.wait() == 0
        assert c.logs() == "hi\nerr\n"  # captured when no stdio is given
        assert c.status == "exited"
    assert containers.list_containers(all=True) == []  # the with block removed it

    c = envkit.run(
        BUSYBOX, ["sh", "-c", "while true; do sleep 0.1; done"], name="api", detach=True, init=True
    )
    try:
        assert c.status == "running"
        same = containers.get("api")  # as another process would find it
        assert same.id == c.id
        result = same.exec(["sh", "-c", "echo $HOME; id -u; exit 2"])
        assert result == containers.ExecResult(2, "/root\n0\n")
        with pytest.raises(RuntimeError_, match="is running"):
            same.remove()
        assert same.stop(timeout=5) == 143
        with pytest.raises(RuntimeError_, match="not running"):
            c.exec(["true"])
    finally:
        c.remove(force=True)
    with pytest.raises(EnvkitError, match="no container"):
        containers.get("api")


def test_python_api_kill_and_auto_remove(home: Path) -> None:
    c = envkit.run(BUSYBOX, ["sleep", "30"], remove=True, stdio=(0, 1, 2))
    c.kill()
    assert c.wait() == 128 + signal.SIGKILL
    assert containers.list_containers(all=True) == []
    # init=True: the with-block stops it with SIGTERM, which sleep as pid 1 would ignore.
    with pytest.raises(TimeoutError), envkit.run(BUSYBOX, ["sleep", "30"], init=True) as slow:
        slow.wait(timeout=0.2)


def test_limits_are_refused_without_delegation(home: Path) -> None:
    from envkit.runtime import cgroups

    parent = cgroups.parent_dir()
    if parent is not None and "memory" in (parent / "cgroup.controllers").read_text().split():
        pytest.skip("this host delegates cgroup v2 controllers: the limit would be applied")
    done = cli(home, ["run", "--rm", "--memory", "64m", "--pids-limit", "10", BUSYBOX, "true"])
    assert done.returncode == 2
    assert "--memory, --pids-limit" in done.stderr and "cgroup v2" in done.stderr
    assert "hint:" in done.stderr
    assert cli(home, ["ps", "-aq"]).stdout == ""  # nothing half-made is left


def test_starts_from_two_threads_never_wait_on_each_other(home: Path) -> None:
    """A container's monitor is a fork of the caller that never execs and lives as long
    as its container: it must not keep a sibling start's pipe ends (that start reads to
    end of file and would wait for the whole life of this container)."""
    import threading

    long_lived: list[containers.Container] = []
    errors: list[BaseException] = []

    def start_long() -> None:
        try:
            for _ in range(8):
                long_lived.append(envkit.run(BUSYBOX, ["sleep", "600"]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def start_short() -> None:
        try:
            for _ in range(8):
                assert envkit.run(BUSYBOX, ["true"], remove=True).wait() == 0
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start_long), threading.Thread(target=start_short)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)  # a start stuck on a sibling's monitor waits 600 s
        assert not any(t.is_alive() for t in threads), "a start waited on a sibling"
        assert errors == []
    finally:
        for container in long_lived:
            container.kill()
            container.wait()
            container.remove()


# --cap-add / --cap-drop and --security-opt: the capability set and the seccomp filter
# follow them as docker's do, and exec gets the container's.

CAPEFF = ["sh", "-c", "grep CapEff /proc/self/status | cut -f2"]


def _effective(out: str) -> frozenset[int]:
    return caps.parse_mask(out.strip())


def test_default_capabilities(home: Path) -> None:
    done = cli(home, ["run", "--rm", BUSYBOX, *CAPEFF])
    assert done.returncode == 0, done.stderr
    assert _effective(done.stdout) == caps.DEFAULT


def test_cap_add_and_drop(home: Path) -> None:
    done = cli(
        home,
        ["run", "--rm", "--cap-add", "sys_ptrace", "--cap-drop", "CAP_CHOWN", BUSYBOX, *CAPEFF],
    )
    assert done.returncode == 0, done.stderr
    want = (caps.DEFAULT - {caps.CAP["CHOWN"]}) | {caps.CAP["SYS_PTRACE"]}
    assert _effective(done.stdout) == want
    none = cli(home, ["run", "--rm", "--cap-drop", "ALL", BUSYBOX, *CAPEFF])
    assert _effective(none.stdout) == frozenset()


def test_cap_add_widens_the_seccomp_filter_as_dockers_profile_says(home: Path) -> None:
    # unshare(2) is allowed by Docker's profile only with CAP_SYS_ADMIN.
    unshare = ["busybox", "unshare", "-u", "true"]
    refused = cli(home, ["run", "--rm", BUSYBOX, *unshare])
    assert refused.returncode == 1 and "Operation not permitted" in refused.stderr
    allowed = cli(home, ["run", "--rm", "--cap-add", "SYS_ADMIN", BUSYBOX, *unshare])
    assert allowed.returncode == 0, allowed.stderr


def test_exec_gets_the_containers_capabilities_and_inspect_shows_them(home: Path) -> None:
    argv = ["run", "-d", "--init", "--name", "capped", "--cap-add", "NET_ADMIN"]
    started = cli(home, [*argv, BUSYBOX, "sleep", "60"])
    assert started.returncode == 0, started.stderr
    done = cli(home, ["exec", "capped", *CAPEFF])
    assert _effective(done.stdout) == caps.DEFAULT | {caps.CAP["NET_ADMIN"]}
    shown = json.loads(cli(home, ["inspect", "capped"]).stdout)[0]["Security"]
    assert "CAP_NET_ADMIN" in shown["Capabilities"]
    assert shown["Seccomp"] == seccomp.profile_name()


def test_unknown_capability_is_a_usage_error(home: Path) -> None:
    done = cli(home, ["run", "--rm", "--cap-add", "NO_SUCH_CAP", BUSYBOX, "true"])
    assert done.returncode == 2
    assert "unknown capability" in done.stderr and "Traceback" not in done.stderr


def test_seccomp_unconfined(home: Path) -> None:
    status = ["grep", "Seccomp:", "/proc/self/status"]
    done = cli(home, ["run", "--rm", "--security-opt", "seccomp=unconfined", BUSYBOX, *status])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Seccomp:", "0"]
    filtered = cli(home, ["run", "--rm", BUSYBOX, *status])
    assert filtered.stdout.split() == ["Seccomp:", "2"]
    bad = cli(home, ["run", "--rm", "--security-opt", "apparmor=x", BUSYBOX, "true"])
    assert bad.returncode == 2 and "unsupported option" in bad.stderr


# pid 1 as docker has it: the command itself reaps nothing it did not start; --init does.

ORPHAN = "(sleep 0.1 &); exec sleep 60"  # the subshell's child is re-parented to pid 1


@pytest.mark.parametrize("init", [False, True], ids=["plain", "init"])
def test_orphans_are_reaped_only_with_init(home: Path, init: bool) -> None:
    argv = ["run", "-d", *(["--init"] if init else []), BUSYBOX, "sh", "-c", ORPHAN]
    started = cli(home, argv)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()

    def zombies() -> int:
        ps = cli(home, ["exec", cid, "ps", "-o", "stat,comm"]).stdout
        return sum(1 for line in ps.splitlines()[1:] if line.split()[0].startswith("Z"))

    time.sleep(0.4)  # the orphan's sleep 0.1 has exited by now
    if init:
        assert zombies() == 0  # tini reaps it
    else:
        wait_for(lambda: zombies() == 1)  # sleep, pid 1, never waits: docker's behaviour
    cli(home, ["rm", "-f", cid])
