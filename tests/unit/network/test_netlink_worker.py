"""The network daemon's netlink worker, its life seen from the daemon's side
(:class:`envkit.network.netlink_client.NetlinkWorker`): started on demand, reused,
let go when idle, started again; a worker that dies or hangs gives a clear error and
is replaced; it dies with the daemon; and the daemon forwards its netlink requests to it
in the words of its control protocol. The worker here is a fake with the real serve
loop (tests/unit/network/fake_netlink_worker.py): no pyroute2, no namespaces."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envkit.errors import NetworkError
from envkit.host import syscalls
from envkit.network import control, netd, netlink_client
from envkit.network.netlink_client import NETLINK_CAPS, NetlinkWorker
from tests.unit.fresh_imports import loaded_after
from tests.unit.network import fake_netlink_worker

FAKE = "tests.unit.network.fake_netlink_worker"
ROOT = str(Path(__file__).resolve().parents[3])


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", ROOT)
    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FAKE_WORKER_START", raising=False)


@pytest.fixture
def netns() -> Iterator[int]:
    fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def fake(netns: int, idle: float = 3.0, timeout: float = 30.0) -> NetlinkWorker:
    return NetlinkWorker(netns, module=FAKE, caps=frozenset(), idle=idle, timeout=timeout)


def until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    """``pid`` exited (and, not being our child, was reaped or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_one_worker_answers_request_after_request(netns: int) -> None:
    worker = fake(netns)
    first = worker.call("pid", {})
    assert worker.call("echo", {"a": [1, "b"]}) == {"a": [1, "b"]}
    assert worker.call("pid", {}) == first
    assert list(worker.spawned) == [first]
    assert worker.running() == first


def test_start_spawns_a_worker_that_the_first_request_uses(netns: int) -> None:
    worker = fake(netns)
    worker.start()
    until(lambda: worker.running() is not None)
    assert worker.call("pid", {}) == worker.spawned[0]
    assert len(worker.spawned) == 1


def test_the_first_worker_may_be_forked_and_later_ones_are_execd(netns: int) -> None:
    worker = NetlinkWorker(
        netns, module=FAKE, caps=frozenset(), idle=0.3, fork=fake_netlink_worker.run
    )
    first = worker.spawned[0]  # there at once, before any request
    assert worker.running() == first
    assert FAKE.encode() not in Path(f"/proc/{first}/cmdline").read_bytes()
    assert worker.call("pid", {}) == first
    assert worker.call("netns", {}) == os.readlink(f"/proc/self/fd/{netns}")
    until(lambda: worker.running() is None)
    second = worker.call("pid", {})
    assert second != first
    assert FAKE.encode() in Path(f"/proc/{second}/cmdline").read_bytes()


def test_an_idle_worker_exits_and_the_next_request_starts_another(netns: int) -> None:
    worker = fake(netns, idle=0.3)
    first = worker.call("pid", {})
    until(lambda: worker.running() is None)
    with pytest.raises(ProcessLookupError):  # exited and reaped by its owner
        os.kill(first, 0)
    second = worker.call("pid", {})
    assert second != first
    assert list(worker.spawned) == [first, second]


def test_requests_keep_the_worker(netns: int) -> None:
    worker = fake(netns, idle=0.5)
    first = worker.call("pid", {})
    for _ in range(5):
        time.sleep(0.2)
        assert worker.call("pid", {}) == first


@pytest.mark.parametrize(
    ("op", "args", "ended"),
    [
        ("exit", {"code": 3}, "exited with status 3"),
        ("kill", {}, "was killed by SIGKILL"),
    ],
)
def test_a_worker_dying_during_a_request_is_a_clear_error_and_is_replaced(
    netns: int, op: str, args: dict[str, int], ended: str
) -> None:
    worker = fake(netns)
    first = worker.call("pid", {})
    with pytest.raises(NetworkError) as caught:
        worker.call(op, args)
    assert caught.value.message == f"the network daemon's netlink worker {ended} during {op!r}"
    assert caught.value.hint is not None
    assert str(netlink_client.log_path()) in caught.value.hint
    assert "the next request starts a new worker" in caught.value.hint
    assert worker.running() is None
    second = worker.call("pid", {})
    assert second != first


def test_a_hanging_worker_is_killed_after_the_timeout(netns: int) -> None:
    worker = fake(netns, timeout=0.5)
    first = worker.call("pid", {})
    with pytest.raises(NetworkError, match=r"did not answer within 0.5 s during 'hang'"):
        worker.call("hang", {})
    assert gone(first)
    assert worker.call("pid", {}) != first


def test_a_worker_that_cannot_start_says_why_and_the_next_request_tries_again(
    netns: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_WORKER_START", "fail")
    worker = fake(netns)
    with pytest.raises(NetworkError, match="the netlink worker failed to start: no pyroute2"):
        worker.call("pid", {})
    monkeypatch.delenv("FAKE_WORKER_START")
    assert worker.call("pid", {}) == worker.spawned[1]


def test_errors_in_the_worker_come_back_in_the_daemons_words(netns: int) -> None:
    worker = fake(netns)
    with pytest.raises(NetworkError) as caught:
        worker.call("fail", {"message": "creating bridge ek-x: File exists", "hint": "h"})
    assert (caught.value.message, caught.value.hint) == ("creating bridge ek-x: File exists", "h")
    with pytest.raises(
        NetworkError, match=r"bad request to the network daemon: KeyError\('nope'\)"
    ):
        worker.call("nope", {})
    worker.call("pid", {})  # still the same worker, still serving
    assert len(worker.spawned) == 1


def test_descriptors_go_to_the_worker_and_the_holder_netns_is_its(netns: int) -> None:
    worker = fake(netns)
    r, w = os.pipe()
    os.write(w, b"a netns")
    try:
        assert worker.call("read", {}, [r]) == ["a netns"]
    finally:
        os.close(r)
        os.close(w)
    assert worker.call("netns", {}) == os.readlink(f"/proc/self/fd/{netns}")


_DAEMON = f"""
import os, sys, time
from envkit.network.netlink_client import NetlinkWorker
worker = NetlinkWorker(os.open("/proc/self/ns/net", os.O_RDONLY), module={FAKE!r},
                       caps=frozenset())
print(worker.call("pid", {{}}), flush=True)
time.sleep(60)
"""


def test_the_worker_dies_with_the_daemon() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _DAEMON], stdout=subprocess.PIPE, text=True
    ) as daemon:
        assert daemon.stdout is not None
        pid = int(daemon.stdout.readline())
        assert not gone(pid)
        daemon.kill()
    until(lambda: gone(pid))


def test_the_worker_keeps_its_capabilities_where_its_uid_is_not_root() -> None:
    """The daemon is not root in the holder's user namespace (it keeps the caller's
    uid), so ``execve`` would drop the worker's capabilities there: they pass as
    ambient ones. A fresh user namespace without id maps stands in for the holder's."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            fd = os.open("/proc/self/ns/net", os.O_RDONLY)
            worker = NetlinkWorker(fd, module=FAKE, caps=NETLINK_CAPS)
            payload: dict[str, object] = {"ok": [os.getuid(), worker.call("caps", {})]}
        except BaseException as exc:
            payload = {"error": repr(exc)}
        os.write(w, json.dumps(payload).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = json.loads(f.read())
    os.waitpid(child, 0)
    assert "ok" in answer, answer.get("error")
    uid, caps = answer["ok"]
    assert uid != 0
    assert sorted(caps) == sorted(NETLINK_CAPS)


def _ask(daemon: netd.Daemon, request: object, fds: list[int] | None = None) -> object:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with mine:
        if isinstance(request, bytes):
            mine.send(request)
        else:
            control.send(mine, request, fds or [])
        daemon.handle(theirs)
        reply, _ = control.receive(mine, 0)
    return reply


def test_the_daemon_forwards_netlink_requests_and_answers_the_rest_itself(netns: int) -> None:
    daemon = netd.Daemon(os.getpid(), netlink=lambda fd: fake(fd))
    assert _ask(daemon, {"op": "ping"}) == {"ok": os.getpid()}
    assert netd.HANDLERS.keys() >= {"setup", "bridge", "remove_link", "link_names", "attach"}
    # The fake has no "setup": its answer is the worker's own "bad request" in the
    # daemon's words, so the request did go to the worker.
    assert _ask(daemon, {"op": "setup", "args": {"bridges": []}}) == {
        "error": "bad request to the network daemon: KeyError('setup')",
        "hint": None,
    }
    assert _ask(daemon, {"op": "nope"}) == {
        "error": "bad request to the network daemon: KeyError('nope')"
    }
    assert _ask(daemon, b"{not json")["error"].startswith(  # type: ignore[index]
        "bad request to the network daemon: JSONDecodeError("
    )
    assert daemon.netlink.spawned and daemon.netlink.running() == daemon.netlink.spawned[0]


def test_the_daemon_does_not_import_pyroute2(tmp_path: Path) -> None:
    assert loaded_after("import envkit.network.netd", tmp_path, ["pyroute2"]) == []


def test_received_descriptors_are_close_on_exec() -> None:
    """A worker spawned while a request is being served must not inherit its
    descriptors (a published port would stay bound by it)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    with mine, theirs:
        control.send(mine, {"op": "x"}, [r])
        value, fds = control.receive(theirs, 4)
        assert value == {"op": "x"}
        assert len(fds) == 1
        assert not os.get_inheritable(fds[0])
        os.close(fds[0])
        mine.close()
        with pytest.raises(EOFError):
            control.receive(theirs, 4)
    os.close(r)
    os.close(w)


@pytest.fixture(autouse=True)
def _no_strays() -> Iterator[None]:
    """Workers whose owner (a NetlinkWorker of a test) outlives the test are killed."""
    yield
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if FAKE.encode() in cmdline and ppid == os.getpid():
            os.kill(int(entry), signal.SIGKILL)
