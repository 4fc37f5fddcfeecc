"""Stack parts without containers: env files, Ready probes, mount collisions, rotating
logs, the /proc readers behind tcp probes and ``top``, and the recreate key."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from envkit import Secret, Service, Stack, Volume
from envkit.errors import SpecError
from envkit.runtime.logs import parse_line
from envkit.spec.readiness import Ready
from envkit.stack import environment, processes, readiness
from envkit.stack import logs as stack_logs
from envkit.stack import state as ss


def test_env_file_syntax() -> None:
    text = (
        "# a comment\n\n"
        "PLAIN=value # trailing comment\n"
        "export EXPORTED=yes\n"
        "SINGLE='keep $HOME \\n as is'\n"
        'DOUBLE="line1\\nline2 \\"quoted\\""\n'
        "EMPTY=\n"
        "SPACED =  padded  \n"
    )
    assert environment.parse(text, "x.env") == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SINGLE": "keep $HOME \\n as is",
        "DOUBLE": 'line1\nline2 "quoted"',
        "EMPTY": "",
        "SPACED": "padded",
    }


@pytest.mark.parametrize("line", ["NOEQUALS", "1BAD=x", "Q='open"])
def test_env_file_errors_name_the_line(line: str) -> None:
    with pytest.raises(SpecError) as caught:
        environment.parse(f"OK=1\n{line}\n", "app.env")
    assert caught.value.field == "app.env:2"


def test_env_precedence_dotenv_then_files_then_code(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=dot\nB=dot\nC=dot\n")
    (tmp_path / "one.env").write_text("B=one\nC=one\n")
    (tmp_path / "two.env").write_text("C=two\n")
    svc = Service("s", image="busybox", env={"A": "code"}, env_file=["one.env", "two.env"])
    stack = Stack("p", services=[svc]).with_base_dir(tmp_path)
    assert environment.service_env(stack, "s") == {"A": "code", "B": "one", "C": "two"}
    # A stack built in code has no stack file dir: no .env is read.
    assert environment.service_env(Stack("p", services=[Service("s", image="busybox")]), "s") == {}


def test_ready_constructors_validate_and_describe() -> None:
    assert Ready.tcp(5432).describe() == "tcp port 5432 open"
    assert Ready.http("/health", 8000, 204).canonical()["status"] == 204
    assert Ready.tcp(1, timeout=5) == Ready.tcp(1, timeout=5.0)
    with pytest.raises(SpecError, match="port"):
        Ready.tcp(70000)
    with pytest.raises(SpecError, match="path"):
        Ready.http("health", 80)
    with pytest.raises(SpecError, match="regular expression"):
        Ready.log("(")
    with pytest.raises(SpecError, match="Ready"):
        Service("s", image="busybox", ready=["tcp:1"])  # type: ignore[list-item]


def test_ready_and_env_file_leave_the_canonical_form_of_other_services_alone() -> None:
    plain = Service("s", image="busybox").canonical()
    assert "ready" not in plain and "env_file" not in plain
    probed = Service("s", image="busybox", ready=Ready.tcp(1), env_file="a.env").canonical()
    assert probed["ready"][0]["type"] == "tcp" and probed["env_file"] == ["a.env"]


def test_two_mounts_at_one_path_fail_in_the_spec() -> None:
    with pytest.raises(SpecError, match="both mounted at /data"):
        Service("s", image="busybox", volumes={Volume("v"): "/data"}, tmpfs=["/data/"])
    with pytest.raises(SpecError, match="both mounted at /run/secrets/x"):
        Service(
            "s",
            image="busybox",
            volumes={"./here": "/run/secrets/x"},
            secrets=[Secret.from_env("X", as_name="x")],
        )


def test_rotating_log_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    path = tmp_path / "svc"
    writer = stack_logs.RotatingLogWriter(str(path), max_bytes=300, max_files=3)
    for i in range(40):
        writer.feed("stdout", f"line {i:02d}\n".encode())
    writer.close()
    kept = stack_logs.files(path)
    assert [p.name for p in kept] == ["svc.2", "svc.1", "svc"]
    assert all(p.stat().st_size < 400 for p in kept)
    lines = [t for _, t, _ in stack_logs.records(path)]
    assert lines[-1] == "line 39\n" and "line 00\n" not in lines
    assert lines == sorted(lines)  # oldest file first
    assert stack_logs.tail(path, 2) == ["line 38", "line 39"]


def test_follow_reads_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "svc"
    writer = stack_logs.RotatingLogWriter(str(path), max_bytes=200, max_files=2)
    follower = stack_logs._Follower(path)
    writer.feed("stdout", b"first\n")
    seen = follower.read(first=True)
    for i in range(6):
        writer.feed("stdout", f"more {i}\n".encode())
        seen += follower.read(first=False)
    writer.close()
    seen += follower.read(first=False)
    follower.close()
    texts = [parse_line(line)[1] for line in seen]
    assert texts == ["first\n", *(f"more {i}\n" for i in range(6))]


def test_listening_reads_this_process_tcp_table() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert readiness.listening(os.getpid(), port) is None
        server.listen()
        assert readiness.listening(os.getpid(), port) == "127.0.0.1"


def test_top_lists_this_process_and_its_children() -> None:
    import subprocess

    child = subprocess.Popen(["sleep", "30"])
    try:
        found = {p.pid: p for p in processes.processes(os.getpid())}
        assert child.pid in found and found[child.pid].command == "sleep 30"
    finally:
        child.kill()
        child.wait()


def test_spec_key_changes_with_the_spec_env_files_and_image(
    tmp_path: Path, envkit_home: Path
) -> None:
    (tmp_path / "a.env").write_text("X=1\n")
    svc = Service("s", image="busybox", env_file="a.env")
    stack = Stack("p", services=[svc]).with_base_dir(tmp_path)
    key = ss.spec_key(stack, "s", "busybox")
    assert key == ss.spec_key(stack, "s", "busybox")
    assert key != ss.spec_key(stack, "s", "alpine")
    (tmp_path / "a.env").write_text("X=2\n")
    assert key != ss.spec_key(stack, "s", "busybox")
    other = Stack("p", services=[Service("s", image="busybox", command=["true"])])
    assert ss.spec_key(other, "s", "busybox") != key
