"""envkit's daemons are fresh interpreters, nobody's children, in their own session, with
nothing of the caller's but the descriptors it names (:mod:`envkit.host.detached`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from envkit.host.detached import spawn_module
from envkit.host.forking import FORK_LOCK


def _spawn_probe(stdin: bytes, *args: str) -> dict[str, object]:
    held = os.open("/", os.O_RDONLY)  # inheritable: must still not reach the daemon
    os.set_inheritable(held, True)
    try:
        with FORK_LOCK:
            data_r, data_w = os.pipe()
            status_r, status_w = os.pipe()
            spawn_module("tests.probes.detached_probe", args, fds={0: data_r, 3: status_w})
            os.close(data_r)
            os.close(status_w)
        with open(data_w, "wb") as data:
            data.write(stdin)
        with open(status_r, "rb") as status:
            answer = json.loads(status.read())
    finally:
        os.close(held)
    assert isinstance(answer, dict)
    return answer


def test_the_daemon_is_detached_and_gets_only_the_named_descriptors() -> None:
    seen = _spawn_probe(b"hello", "a", "b")
    assert seen["argv"] == ["a", "b"]
    assert seen["stdin"] == "hello"
    assert seen["fds"] == [0, 1, 2, 3, 4]  # 4: the listing's own directory fd
    assert seen["ppid"] != os.getpid()  # the middle process exited: not our child
    assert seen["sid"] == seen["pid"]  # a session of its own
    assert seen["cwd"] == "/"
    assert seen["stdout"] == "/dev/null"


def test_a_caller_without_stdin_still_hands_over_its_pipes(tmp_path: Path) -> None:
    """A pipe numbered 0 (the caller's stdin was closed) must not be clobbered by the
    daemon's /dev/null stdin before it is moved to its place."""
    saved = os.dup(0)
    try:
        os.close(0)
        with FORK_LOCK:
            data_r, data_w = os.pipe()  # data_r takes number 0
            status_r, status_w = os.pipe()
            assert data_r == 0
            spawn_module("tests.probes.detached_probe", fds={0: data_r, 3: status_w})
            os.close(status_w)
        os.dup2(saved, 0)  # closes our data_r, restores stdin
        with open(data_w, "wb") as data:
            data.write(b"from a pipe numbered 0")
        with open(status_r, "rb") as status:
            seen = json.loads(status.read())
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert seen["stdin"] == "from a pipe numbered 0"
