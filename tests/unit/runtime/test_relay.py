"""The terminal relay: a container gets pipes, never the caller's terminal."""

from __future__ import annotations

import os
import subprocess
import sys

from envkit.runtime import relay


def test_no_terminal_no_relay() -> None:
    r, w = os.pipe()
    try:
        assert relay.shield((r, w, w)) is None
    finally:
        os.close(r)
        os.close(w)


def test_terminal_fds_are_replaced_by_pipes_and_copied() -> None:
    master, slave = os.openpty()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        shield = relay.shield((null, slave, slave))
        assert shield is not None
        assert shield.stdio[0] == null  # not a terminal: passed as it is
        assert not os.isatty(shield.stdio[1]) and not os.isatty(shield.stdio[2])
        out, err = os.dup(shield.stdio[1]), os.dup(shield.stdio[2])  # the container's
        shield.start()
        os.write(out, b"to stdout\n")
        os.write(err, b"to stderr\n")
        for fd in (out, err):  # what the container held: its exit closes them
            os.close(fd)
        shield.finish()
        seen = b""
        while b"stderr" not in seen or b"stdout" not in seen:
            seen += os.read(master, 1024)
        assert b"to stdout" in seen and b"to stderr" in seen
    finally:
        for fd in (master, slave, null):
            os.close(fd)


def test_terminal_input_goes_through_a_pipe() -> None:
    master, slave = os.openpty()
    try:
        shield = relay.shield((slave, slave, slave))
        assert shield is not None
        assert not any(os.isatty(fd) for fd in shield.stdio)
        held = [os.dup(fd) for fd in shield.stdio]  # what a forked container holds
        shield.start()
        os.write(master, b"typed\n")
        assert os.read(held[0], 100) == b"typed\n"
        for fd in held:
            os.close(fd)
        shield.finish()
    finally:
        os.close(master)
        os.close(slave)


def test_finish_does_not_wait_for_a_pipe_a_background_process_holds() -> None:
    master, slave = os.openpty()
    try:
        shield = relay.shield((slave, slave, slave))
        assert shield is not None
        held = os.dup(shield.stdio[1])  # a process left behind keeps stdout open
        shield.start()
        shield.finish()  # returns after DRAIN_SECONDS of silence, not never
        os.close(held)
    finally:
        os.close(master)
        os.close(slave)


def test_hide_command_line_wipes_argv_and_environ() -> None:
    code = (
        "import os, sys\n"
        "from envkit.host.prctl import hide_command_line\n"
        "hide_command_line(b'envkit')\n"
        "pid = os.getpid()\n"
        "print(open(f'/proc/{pid}/cmdline', 'rb').read())\n"
        "print(open(f'/proc/{pid}/environ', 'rb').read().strip(b'\\0'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "secret-arg"],
        env={**os.environ, "SOME_SECRET": "s3cr3t"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cmdline, environ = out.splitlines()
    assert cmdline.replace("\\x00", "") == "b'envkit'"
    assert environ == "b''"
    assert "secret" not in out
