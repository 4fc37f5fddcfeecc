"""envkit.host.forking: one way to run a function in a forked child and get its answer."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time

import pytest

from envkit.errors import ChildDied, ChildError, ChildTimeout, HomeError, RuntimeError_, SpecError
from envkit.host import forking
from envkit.host.forking import (
    FORK_LOCK,
    call_in_child,
    start_child,
)


def _pid() -> int:
    return os.getpid()


def test_the_answer_comes_back_from_another_process() -> None:
    assert call_in_child(_pid) != os.getpid()
    assert call_in_child(lambda a, b: {"sum": a + b, "items": [a, None, "x"]}, 2, 3) == {
        "sum": 5,
        "items": [2, None, "x"],
    }


def test_tuples_come_back_as_lists() -> None:
    answer: object = call_in_child(lambda: (1, ("a", 2.5)))
    assert answer == [1, ["a", 2.5]]


def test_a_large_answer_is_read_while_it_is_written() -> None:
    # Far beyond a pipe's 64 KiB: a parent that waited before reading would deadlock.
    big = "x" * (8 << 20)
    assert call_in_child(lambda: [big, big]) == [big, big]


def test_a_value_json_cannot_carry_is_the_childs_type_error() -> None:
    with pytest.raises(ChildError, match="TypeError: Object of type bytes") as caught:
        call_in_child(lambda: b"raw")
    assert caught.value.type_name == "TypeError"


def test_an_os_error_comes_back_with_strerror_file_and_errno() -> None:
    def fail() -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere")

    with pytest.raises(ChildError) as caught:
        call_in_child(fail, what="the probe")
    assert caught.value.message == "No such file or directory: /nowhere"
    assert caught.value.errno == errno.ENOENT
    assert caught.value.type_name == "FileNotFoundError"
    assert isinstance(caught.value, RuntimeError_)  # printed without a traceback, exit 1


def test_other_exceptions_name_their_class() -> None:
    def fail() -> None:
        raise ValueError("bad value")

    with pytest.raises(ChildError, match=r"^ValueError: bad value$") as caught:
        call_in_child(fail)
    assert caught.value.errno is None and caught.value.child_traceback == ""


def test_an_envkit_error_comes_back_as_itself() -> None:
    def fail() -> None:
        raise HomeError("cannot write to ENVKIT_HOME", hint="free some space")

    with pytest.raises(HomeError) as caught:
        call_in_child(fail)
    assert caught.value.message == "cannot write to ENVKIT_HOME"
    assert caught.value.hint == "free some space"
    assert str(caught.value) == "cannot write to ENVKIT_HOME\n  hint: free some space"


def test_an_envkit_error_keeps_its_plain_attributes() -> None:
    def fail() -> None:
        raise SpecError("Service('web').ports", "not a port", value=70000)

    with pytest.raises(SpecError) as caught:
        call_in_child(fail)
    assert caught.value.field == "Service('web').ports"
    assert caught.value.value == 70000
    assert "not a port (got 70000)" in caught.value.message


def test_envkit_debug_brings_the_childs_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVKIT_DEBUG", "1")

    def deep_failure() -> None:
        raise KeyError("missing")

    with pytest.raises(ChildError) as caught:
        call_in_child(deep_failure)
    assert "deep_failure" in caught.value.child_traceback
    assert "Traceback" in str(caught.value)


def test_an_exit_without_an_answer_reports_the_status() -> None:
    with pytest.raises(ChildDied, match="the probe exited with status 3 without an answer") as c:
        call_in_child(os._exit, 3, what="the probe")
    assert c.value.exit_code == 3


def test_a_child_killed_by_a_signal_names_it() -> None:
    with pytest.raises(ChildDied, match=r"was killed by signal 9 \(SIGKILL\)") as caught:
        call_in_child(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert caught.value.exit_code == -signal.SIGKILL


def test_a_child_over_its_timeout_is_killed_and_reaped() -> None:
    started = time.monotonic()
    pids: list[int] = []

    def note(pid: int) -> None:
        pids.append(pid)

    with pytest.raises(ChildTimeout, match=r"the probe gave no answer within 0\.3 s"):
        call_in_child(time.sleep, 30, what="the probe", timeout=0.3, parent_step=note)
    assert time.monotonic() - started < 5
    with pytest.raises(ChildProcessError):  # reaped: no zombie left
        os.waitpid(pids[0], os.WNOHANG)


def test_setup_runs_in_the_child_before_the_parent_step_and_fn() -> None:
    seen: list[object] = []

    def setup() -> None:
        os.environ["ENVKIT_TEST_STEP"] = "setup"

    def parent_step(pid: int) -> None:
        # The child waits here: its setup has run, fn has not.
        seen.append(pid != os.getpid() and "ENVKIT_TEST_STEP" not in os.environ)

    def fn() -> str:
        return os.environ["ENVKIT_TEST_STEP"] + ", fn"

    assert call_in_child(fn, setup=setup, parent_step=parent_step) == "setup, fn"
    assert seen == [True]


def test_a_failing_setup_is_raised_and_the_parent_step_skipped() -> None:
    called: list[int] = []

    def setup() -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    with pytest.raises(ChildError, match=r"^Operation not permitted$"):
        call_in_child(_pid, setup=setup, parent_step=called.append)
    assert called == []


def test_a_failing_parent_step_kills_the_child_and_is_raised() -> None:
    pids: list[int] = []

    def parent_step(pid: int) -> None:
        pids.append(pid)
        raise OSError(errno.EPERM, "newuidmap failed")

    with pytest.raises(OSError, match="newuidmap failed"):
        call_in_child(_pid, parent_step=parent_step)
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)


def test_start_child_returns_once_the_command_was_execd() -> None:
    read_r, read_w = os.pipe()

    def run() -> None:
        os.dup2(read_w, 1)
        os.execv("/bin/sh", ["sh", "-c", "echo started; exit 7"])

    pid = start_child(run)
    os.close(read_w)
    with os.fdopen(read_r) as out:
        assert out.read() == "started\n"
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7


def test_start_child_raises_what_failed_before_the_exec() -> None:
    with pytest.raises(ChildError, match=r"^No such file or directory$") as c:
        start_child(os.execv, "/no/such/command", ["x"], what="the command")
    assert c.value.errno == errno.ENOENT


def test_the_child_of_a_fork_made_under_the_lock_can_fork_again() -> None:
    # A container start made under FORK_LOCK (a build's run step) makes its shared user
    # namespace through this module again: the lock is reentrant, and a child
    # re-initialises it.
    with FORK_LOCK:
        assert call_in_child(lambda: call_in_child(lambda: "nested")) == "nested"


def test_a_lock_held_by_another_thread_is_free_in_the_child() -> None:
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with FORK_LOCK:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(10)
        # Fork by hand (the helper would wait for the lock): the child's copy of the
        # lock is re-initialised, so the helper works there.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = 0 if call_in_child(lambda: 5, timeout=5) == 5 else 1
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        release.set()
        thread.join()


def test_a_fork_in_another_thread_does_not_get_this_childs_answer_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another thread forks a long-lived child right after this call made its answer
    # pipe. Without the lock that child inherits the pipe's write end and this call
    # waits for EOF until it exits; with it, the other fork waits for this one.
    pipe2 = os.pipe2
    other = threading.Thread(target=call_in_child, args=(time.sleep, 2))
    made: list[int] = []

    def pipe_then_let_the_other_thread_fork(flags: int) -> tuple[int, int]:
        fds = pipe2(flags)
        if not made:
            made.append(1)
            other.start()
            time.sleep(0.3)  # the other thread's fork would happen now
        return fds

    monkeypatch.setattr(os, "pipe2", pipe_then_let_the_other_thread_fork)
    started = time.monotonic()
    call_in_child(_pid)
    took = time.monotonic() - started
    monkeypatch.undo()
    other.join()
    assert took < 1.5


def test_the_module_imports_no_threading_or_typing() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import envkit.host.forking; "
        "print(sorted({'threading', 'typing'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
    assert forking.__doc__ and "lock" in forking.__doc__


def test_a_child_forked_inside_the_lock_by_hand_leaves_its_with_block() -> None:
    # The daemon start's pattern: fork inside ``with FORK_LOCK``, the child goes on past
    # the block (held by the forking thread, the lock stays held in the child).
    with FORK_LOCK:
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = 0 if call_in_child(lambda: "ok", timeout=5) == "ok" else 1
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


# The sites, through the helper (what needs no namespaces or containers).


def test_doctor_probes_report_the_childs_error_text() -> None:
    from envkit.runtime import probes

    def fail() -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    assert probes._in_child(lambda: None) == ""
    assert probes._in_child(fail) == "Operation not permitted"
    assert (
        probes._in_child(lambda: os._exit(4)) == "the probe exited with status 4 without an answer"
    )


def test_a_readiness_probe_answers_through_the_helper() -> None:
    from envkit.stack import readiness

    def refused(host: str, port: int, path: str) -> int:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    # Its own pid: the network namespace is the same, nothing to join.
    assert readiness._in_netns(os.getpid(), lambda host, port, path: port + 1, "h", 79, "/") == 80
    with pytest.raises(ChildError, match=r"^Connection refused$") as caught:
        readiness._in_netns(os.getpid(), refused, "h", 80, "/")
    assert caught.value.errno == errno.ECONNREFUSED


def test_in_holder_failures_are_network_errors() -> None:
    from envkit.errors import NetworkError
    from envkit.network import ns

    # Joining one's own user namespace is refused by the kernel (EINVAL).
    with pytest.raises(
        NetworkError, match=r"^inside the network namespace: setns: Invalid argument"
    ):
        ns.in_holder(os.getpid(), lambda: None)
