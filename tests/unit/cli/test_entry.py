"""The console script's exit: ``os._exit`` after flushing output and running atexit
functions, so nothing a command wrote or scheduled is lost by skipping finalization."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _entry_with(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``envkit.cli.entry`` with ``main`` replaced by ``body`` (a function body)."""
    code = (
        "import atexit, sys, threading, time\n"
        "import envkit.cli as cli\n"
        f"out = {str(tmp_path)!r}\n"
        "def main():\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
        + "cli.main = main\n"
        "cli.entry()\n"
    )
    # Buffered output, as a console script's to a pipe (unless PYTHONUNBUFFERED is set).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env=env,
    )


def test_exit_code_and_buffered_output_survive(tmp_path: Path) -> None:
    done = _entry_with(
        tmp_path, "print('x' * 100000)\nprint('late', file=sys.stderr)\nprint('end')\nreturn 3"
    )
    assert done.returncode == 3
    assert done.stdout == "x" * 100000 + "\nend\n"
    assert done.stderr == "late\n"


def test_atexit_functions_run(tmp_path: Path) -> None:
    body = "atexit.register(lambda: open(out + '/atexit', 'w').write('ran'))\nreturn 0"
    assert _entry_with(tmp_path, body).returncode == 0
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    body = (
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    open(out + '/thread', 'w').write('done')\n"
        "threading.Thread(target=late).start()\n"
        "return 0"
    )
    assert _entry_with(tmp_path, body).returncode == 0
    assert (tmp_path / "thread").read_text() == "done"


def test_a_closed_stdout_is_not_an_error(tmp_path: Path) -> None:
    done = _entry_with(tmp_path, "print('x')\nsys.stdout.close()\nreturn 0")
    assert done.returncode == 0
    assert done.stderr == ""
