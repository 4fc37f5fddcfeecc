"""The hold program (envkit/stack/hold.py) without containers: its log records are the
supervisor's (json-file lines, rotation), it loads no package, and each kind of event
makes it exec the command it was given, the resume request still on its stdin."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.runtime import logfile
from envkit.runtime.logs import parse_line
from envkit.stack import hold, holding

CHUNKS = [b"one\ntw", b"o\n", "ünïcode \u2028 \x1b[31m\n".encode(), b"\xff\xfe bad\n", b"tail"]


def _records(path: Path) -> list[tuple[str, str]]:
    # Not splitlines(): a record keeps U+2028 as it is, and only "\n" ends a record.
    return [parse_line(line)[:2] for line in path.read_text().split("\n")[:-1]]


def test_its_log_writer_is_the_supervisors_file() -> None:
    """The program loads envkit/runtime/logfile.py by path (no package import)."""
    writer = vars(hold)["LogWriter"]
    assert writer.__module__ == "logfile"
    source = sys.modules[writer.__module__].__file__
    assert source is not None and Path(source) == Path(logfile.__file__)


def test_records_are_json_dumps_byte_for_byte(tmp_path: Path) -> None:
    writer = logfile.LogWriter(str(tmp_path / "log"))
    for chunk in CHUNKS:
        writer.feed("stdout", chunk)
    writer.feed("stderr", b"err\n")
    writer.close()
    lines = (tmp_path / "log").read_text().split("\n")[:-1]
    assert [parse_line(line)[:2] for line in lines] == [
        ("stdout", "one\n"),
        ("stdout", "two\n"),
        ("stdout", "ünïcode \u2028 \x1b[31m\n"),
        ("stdout", "\ufffd\ufffd bad\n"),
        ("stderr", "err\n"),
        ("stdout", "tail"),
    ]
    for line in lines:
        record = json.loads(line)
        assert list(record) == ["log", "stream", "time"]
        assert json.dumps(record, ensure_ascii=False) == line


def test_the_command_line_round_trips() -> None:
    argv = holding.program_argv(
        listening=7,
        rotate=(100, 2),
        watch=[(10, 20), (11, 21)],
        owner=(5, 6),
        logs=[("/l/web", "/f/a.out", "/f/a.err")],
    )
    assert argv[1:4] == ["-I", "-S", holding.PROGRAM]
    options = hold.Options(argv[4:])
    assert options.listen == 7 and (options.max_bytes, options.max_files) == (100, 2)
    assert options.watch == [(5, 6), (10, 20), (11, 21)]
    assert options.logs == [("/l/web", "/f/a.out", "/f/a.err")]
    assert options.command[-3:] == ["envkit.stack.daemon", "--resume", "7"]


def test_hold_after_reads_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert holding.hold_after("") == holding.HOLD_AFTER
    assert holding.hold_after(" 0.5 ") == 0.5
    assert holding.hold_after("off") is None
    assert holding.hold_after("-1") is None
    monkeypatch.setenv("ENVKIT_STACK_HOLD_AFTER", "7")
    assert holding.hold_after() == 7.0


class Held:
    """The hold program over a FIFO pair and a child to watch; its resume command
    prints what it got (argv, stdin, pending SIGTERM) as JSON to ``out``."""

    def __init__(self, tmp_path: Path) -> None:
        self.fifo_out, self.fifo_err = tmp_path / "c.out", tmp_path / "c.err"
        os.mkfifo(self.fifo_out)
        os.mkfifo(self.fifo_err)
        self.log = tmp_path / "log"
        self.out = tmp_path / "resumed.json"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(tmp_path / "s"))
        self.listener.listen(4)
        self.path = str(tmp_path / "s")
        # The writer side a container would hold: read-write, so it never blocks.
        self.writer_out = os.open(self.fifo_out, os.O_RDWR)
        self.writer_err = os.open(self.fifo_err, os.O_RDWR)
        self.child = subprocess.Popen(["sleep", "60"])
        start = hold.process_start(self.child.pid)
        assert start is not None
        resume = [
            sys.executable,
            "-c",
            "import json, os, signal, sys; json.dump({'argv': sys.argv[1:], "
            "'stdin': sys.stdin.read(), 'term': signal.SIGTERM in signal.sigpending()}, "
            f"open({str(self.out)!r}, 'w'))",
            "--resume",
        ]
        argv = holding.program_argv(
            listening=self.listener.fileno(),
            rotate=(1 << 20, 2),
            watch=[(self.child.pid, start)],
            owner=None,
            logs=[(str(self.log), str(self.fifo_out), str(self.fifo_err))],
        )
        argv = [*argv[: argv.index("--") + 1], *resume]
        stdin = tmp_path / "request"
        stdin.write_text('{"name": "held"}')
        with open(stdin) as request:
            self.process = subprocess.Popen(argv, stdin=request, pass_fds=[self.listener.fileno()])

    def wait_held(self) -> None:
        deadline = time.monotonic() + 10
        while "hold.py" not in Path(f"/proc/{self.process.pid}/cmdline").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # Started: its pipes are open once it pumps (a write is seen in the log).
        os.write(self.writer_out, b"ready\n")
        deadline = time.monotonic() + 10
        while not self.log.exists() or "ready" not in self.log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def resumed(self) -> dict[str, object]:
        assert self.process.wait(10) == 0
        data = json.loads(self.out.read_text())
        assert isinstance(data, dict)
        return data

    def close(self) -> None:
        for process in (self.child, self.process):
            if process.poll() is None:
                process.kill()
                process.wait()
        os.close(self.writer_out)
        os.close(self.writer_err)
        self.listener.close()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Held]:
    program = Held(tmp_path)
    yield program
    program.close()


def test_it_pumps_until_a_watched_process_exits_then_resumes(held: Held) -> None:
    held.wait_held()
    os.write(held.writer_out, b"hello\npart")
    os.write(held.writer_err, b"oops\n")
    time.sleep(0.2)
    held.child.kill()
    held.child.wait()
    answer = held.resumed()
    assert answer["argv"] == ["--resume"]
    assert answer["stdin"] == '{"name": "held"}'  # the request, read from the start
    assert answer["term"] is False
    records = _records(held.log)
    assert ("stdout", "hello\n") in records and ("stderr", "oops\n") in records
    assert records[-1] == ("stdout", "part")  # a partial line is written, not lost


def test_a_waiting_connection_resumes_it_and_stays_in_the_backlog(held: Held) -> None:
    held.wait_held()
    caller = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    caller.connect(held.path)
    held.resumed()
    held.listener.settimeout(1)
    conn, _ = held.listener.accept()  # never accepted by the hold program
    conn.close()
    caller.close()


def test_sigterm_resumes_it_with_the_signal_pending(held: Held) -> None:
    held.wait_held()
    held.process.send_signal(signal.SIGTERM)
    assert held.resumed()["term"] is True


def test_it_loads_no_package(tmp_path: Path) -> None:
    probe = (
        "import sys; sys.argv = ['hold.py', '--listen', '0', '--', 'x'];"
        f"source = open({holding.PROGRAM!r}).read();"
        f"names = {{'__name__': 'not_main', '__file__': {holding.PROGRAM!r}}};"
        f"exec(compile(source, {holding.PROGRAM!r}, 'exec'), names);"
        "names = ('envkit', 'json', 're', 'typing', 'enum');"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in names))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
