"""The mechanics a new supervisor relies on to adopt a lost one's containers, with plain
processes (no namespaces): output pipes that outlive their reader, and waiting for a
process that is not a child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from envkit.stack import launcher


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
    launcher.wait_exit(2**22 + 12345, 1)
