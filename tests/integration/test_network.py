"""The networking engine end to end: holder, bridges, names, isolation, ports, egress.

"Containers" here are :class:`envkit.network.sandbox.Sandbox` processes: a Python or
busybox command in its own network namespace (owned by the holder's user namespace),
with the managed hosts file and resolv.conf bind-mounted, as the runtime will do it.
Everything runs as the calling user: as root and as an unprivileged user alike.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envkit import network
from envkit.network import state
from envkit.network.egress import HOST_LOOPBACK
from envkit.network.sandbox import Sandbox

pytestmark = pytest.mark.usefixtures("userns")
PY = sys.executable

# Answers TCP on 7000 and UDP on 7001 with its name (argv[1]).
SERVER = """
import socket, sys, threading
me = sys.argv[1].encode()
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 7001))
    while True:
        data, peer = u.recvfrom(100)
        u.sendto(me + b":" + data, peer)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(me)
    c.close()
"""

# Tries TCP host:port (argv[2], argv[3]) and, with argv[4] == "udp", UDP host:7001;
# writes what it got (or the error) to argv[1]. Retries for a while: servers start async.
CLIENT = """
import socket, sys, time
out, host, port, udp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "udp"
tries = int(sys.argv[5]) if len(sys.argv) > 5 else 50
result = "none"
for _ in range(tries):
    try:
        with socket.create_connection((host, port), timeout=1) as c:
            result = "tcp=" + c.recv(100).decode()
        if udp:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(1)
            u.sendto(b"ping", (host, 7001))
            result += " udp=" + u.recv(100).decode()
        break
    except OSError as exc:
        result = "error=" + type(exc).__name__
        time.sleep(0.1)
with open(out + ".tmp", "w") as f:
    f.write(result)
import os
os.rename(out + ".tmp", out)
"""


@pytest.fixture
def net_env(envkit_home: Path, tmp_path: Path) -> Iterator[Path]:
    """A fresh ``$ENVKIT_HOME``, made readable for the sandboxes; torn down after."""
    for path in (tmp_path, envkit_home):
        path.chmod(0o755)
    yield tmp_path
    network.teardown()


def server(name: str, nets: list[str], aliases: tuple[str, ...] = ()) -> Sandbox:
    return Sandbox(name, [PY, "-c", SERVER, name], nets, aliases)


def run_client(
    tmp: Path,
    name: str,
    nets: list[str],
    host: str,
    port: int = 7000,
    udp: bool = False,
    tries: int = 50,
) -> str:
    out = tmp / f"{name}.out"
    args = [PY, "-c", CLIENT, str(out), host, str(port), "udp" if udp else "tcp", str(tries)]
    with Sandbox(name, args, nets) as client:
        os.waitpid(client.pid, 0)
    return out.read_text()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def daemon_pids() -> list[int]:
    """The holder's and the network daemon's pids."""
    d = state.load_daemons()
    return [p.pid for p in (d.holder, d.netd) if p is not None] if d else []


def test_containers_on_one_network_reach_each_other_by_name(net_env: Path) -> None:
    network.create("front")
    with server("web", ["front"], aliases=("www",)):
        assert run_client(net_env, "c1", ["front"], "web", udp=True) == "tcp=web udp=web:ping"
        assert run_client(net_env, "c2", ["front"], "www") == "tcp=web"


def test_containers_on_two_networks_cannot_reach_each_other(net_env: Path) -> None:
    network.create("red")
    network.create("blue")
    with server("redsrv", ["red"]) as srv:
        assert run_client(net_env, "redcli", ["red"], srv.ip) == "tcp=redsrv"
        got = run_client(net_env, "bluecli", ["blue"], srv.ip, tries=3)
        assert got.startswith("error="), got
        assert run_client(net_env, "bluename", ["blue"], "redsrv", tries=1) == "error=gaierror"


def test_host_loopback_only_when_mapped_and_never_from_internal(net_env: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(b"host")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        network.create("mapped", host_loopback=True)
        network.create("plain")
        network.create("sealed", internal=True, host_loopback=True)
        assert run_client(net_env, "m", ["mapped"], HOST_LOOPBACK, port) == "tcp=host"
        assert run_client(net_env, "m2", ["mapped"], "host.envkit.internal", port) == "tcp=host"
        assert run_client(net_env, "p", ["plain"], HOST_LOOPBACK, port, tries=3).startswith(
            "error="
        )
        assert run_client(net_env, "s", ["sealed"], HOST_LOOPBACK, port, tries=3).startswith(
            "error="
        )
    finally:
        listener.close()


def test_internal_network_gets_no_resolver_and_no_egress(net_env: Path) -> None:
    network.create("sealed", internal=True)
    network.create("open")
    with server("inner", ["sealed"]):
        assert "nameserver" not in network.resolv_conf("inner").read_text()
        assert run_client(net_env, "peer", ["sealed"], "inner") == "tcp=inner"
    with server("outer", ["open"]):
        assert "nameserver 10.89." in network.resolv_conf("outer").read_text()


def test_published_port_answers_from_the_host(net_env: Path) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("busybox missing: apt-get install busybox-static")
    www = net_env / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from httpd\n")
    www.chmod(0o755)
    network.create("pub")
    argv = [busybox, "httpd", "-f", "-p", "8080", "-h", str(www)]
    with Sandbox("httpd", argv, ["pub"]), server("echo", ["pub"]):
        (tcp,) = network.publish("httpd", ["0:8080"])
        assert tcp.host_port > 0 and tcp.host_ip == "127.0.0.1"
        (udp,) = network.publish("echo", ["0:7001/udp"])
        url = f"http://127.0.0.1:{tcp.host_port}/index.html"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return bool(r.read() == b"hello from httpd\n")
            except OSError:
                return False

        wait_for(answers, "busybox httpd through the published port")
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(1)
        replies: list[bytes] = []

        def udp_answers() -> bool:
            u.sendto(b"x", ("127.0.0.1", udp.host_port))
            try:
                replies.append(u.recv(100))
            except OSError:
                return False
            return True

        with u:
            wait_for(udp_answers, "UDP echo through the published port")
        assert replies[-1] == b"echo:x"
        assert {str(m) for m in network.published("httpd")} == {str(tcp)}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tcp.host_port), timeout=2)


def test_port_in_use_fails_clearly_before_anything_starts(net_env: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    network.create("busy")
    try:
        with server("svc", ["busy"]):
            with pytest.raises(network.NetworkError) as err:
                network.publish("svc", [f"{port}:7000"])
            assert f"127.0.0.1:{port}/tcp is already in use" in str(err.value)
            assert "hint:" in str(err.value)
            assert network.published("svc") == []
    finally:
        taken.close()


def test_restarted_container_is_found_by_name_again(net_env: Path) -> None:
    network.create("app")
    watcher = """
import socket, sys, time
out = sys.argv[1]
while True:
    try:
        with socket.create_connection(("db", 7000), timeout=1) as c:
            got = c.recv(100)
        with open(out, "ab") as f:
            f.write(got + b"\\n")
    except OSError:
        pass
    time.sleep(0.05)
"""
    seen = net_env / "seen"
    seen.touch()
    seen.chmod(0o666)
    first = Sandbox("db", [PY, "-c", SERVER, "db-one"], ["app"])
    old_ip = first.ip
    with Sandbox("app", [PY, "-c", watcher, str(seen)], ["app"]):
        wait_for(lambda: b"db-one" in seen.read_bytes(), "the first db by name")
        first.stop()
        second = Sandbox("db", [PY, "-c", SERVER, "db-two"], ["app"])
        try:
            assert second.ip != old_ip
            assert f"{second.ip}\tdb\n" in network.hosts_file("app").read_text()
            wait_for(lambda: b"db-two" in seen.read_bytes(), "the restarted db by name")
        finally:
            second.stop()


def test_nothing_left_after_tear_down(net_env: Path) -> None:
    network.create("gone")
    with server("a", ["gone"]) as a:
        (mapping,) = network.publish("a", ["0:7000"])
        pids = daemon_pids()
        # The network daemon serves the ports: no process of their own.
        assert [r["pid"] for r in network.ports.records("a")] == pids[1:]
        assert len(pids) == 2 and all(state.start_time(p) for p in pids)
        veth = a.endpoints[0].veth
    # The sandbox's exit disconnected it, its ports closed, and with no user left the
    # holder (bridges, veths and namespaces) and the network daemon went too.
    assert state.load_daemons() is None
    assert all(state.start_time(p) is None for p in pids), pids
    assert not list((state.root() / "endpoints").glob("*/*.json"))
    assert not network.ports.all_containers()
    assert veth and not (state.root() / "hosts" / "a").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", mapping.host_port), timeout=2)
    assert network.inspect("gone")["containers"] == {}
    network.remove("gone")
    assert network.list_networks() == []


def test_reap_after_kill_9(net_env: Path) -> None:
    network.create("crash")
    srv = server("victim", ["crash"])
    (mapping,) = network.publish("victim", ["0:7000"])
    holder_pid, netd_pid = daemon_pids()
    srv.kill()  # the container dies with nobody to disconnect it
    network.reap()
    assert state.start_time(holder_pid) is None and state.start_time(netd_pid) is None
    assert network.inspect("crash")["containers"] == {}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", mapping.host_port), timeout=2)


def test_dead_holder_is_restarted_and_containers_reattached(net_env: Path) -> None:
    network.create("phoenix")
    with server("bird", ["phoenix"]) as bird:
        (mapping,) = network.publish("bird", ["0:7000"])
        holder_pid, _ = daemon_pids()
        os.kill(holder_pid, signal.SIGKILL)
        wait_for(lambda: state.start_time(holder_pid) is None, "the holder to die")
        network.reap()
        new_holder, _ = daemon_pids()
        assert new_holder != holder_pid
        with socket.create_connection(("127.0.0.1", mapping.host_port), timeout=5) as c:
            assert c.recv(100) == b"bird"
        assert bird.pid > 0


def _port_free(port: int) -> bool:
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


def test_dead_network_daemon_is_restarted_and_ports_republished(net_env: Path) -> None:
    network.create("phoenix")
    with server("bird", ["phoenix"]):
        (mapping,) = network.publish("bird", ["0:7000"])
        holder_pid, netd_pid = daemon_pids()
        os.kill(netd_pid, signal.SIGKILL)
        wait_for(lambda: state.start_time(netd_pid) is None, "the network daemon to die")
        wait_for(lambda: _port_free(mapping.host_port), "its ports to close")
        network.reap()
        same_holder, new_netd = daemon_pids()
        assert same_holder == holder_pid and new_netd != netd_pid
        assert network.published("bird") == [mapping]
        with socket.create_connection(("127.0.0.1", mapping.host_port), timeout=5) as c:
            assert c.recv(100) == b"bird"


def test_unpublish_frees_the_ports_at_once(net_env: Path) -> None:
    network.create("early")
    with server("svc", ["early"]):
        (mapping,) = network.publish("svc", ["0:7000"])
        network.unpublish("svc")
        assert _port_free(mapping.host_port)
        assert network.published("svc") == []


# Accepts one connection on 7000, waits for argv[1] seconds of silence, then answers.
SLOW = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen()
while True:
    c, _ = s.accept()
    time.sleep(float(sys.argv[1]))
    c.sendall(b"late answer")
    c.close()
"""


def test_an_idle_published_connection_stays_open(
    net_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connect timeout bounds the connect only, not the silences that follow."""
    # The network daemon starts with this test's environment.
    monkeypatch.setenv("ENVKIT_NETWORK_CONNECT_TIMEOUT", "0.3")
    network.create("idle")
    with Sandbox("slow", [PY, "-c", SLOW, "1.5"], ["idle"]):
        (mapping,) = network.publish("slow", ["0:7000"])
        received = b""
        for _ in range(50):  # the server starts asynchronously: refused until it listens
            try:
                with socket.create_connection(("127.0.0.1", mapping.host_port), 10) as c:
                    received = b"".join(iter(lambda: c.recv(100), b""))
            except ConnectionResetError:
                time.sleep(0.1)
                continue
            break
        assert received == b"late answer"


def test_a_holder_whose_starter_was_killed_is_stopped_by_the_next_reap(net_env: Path) -> None:
    """The holder goes on record before its network daemon starts (~0.15 s): a caller
    killed in between (a killed `up`) leaves a record without a daemon, which the next
    command's reap stops, instead of a holder nobody knows of (the kill -9 suite found
    `sleep infinity` left over)."""
    stand_in = subprocess.Popen(["sleep", "600"])  # stands for a half-started holder
    try:
        state.root().mkdir(parents=True, exist_ok=True)
        state.save_daemons(state.Daemons(state.Proc.of(stand_in.pid), None))
        network.reap()
        assert stand_in.wait(timeout=10) == -signal.SIGKILL
        assert state.load_daemons() is None
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
            stand_in.wait()


# Starts a holder with the record's save replaced by: print the holder, die by SIGKILL.
KILLED_BEFORE_RECORD = """
import os, signal
from envkit.network import holder, state
def killed(d):
    print(d.holder.pid, d.holder.start, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
state.save_daemons = killed
holder.ensure()
"""


def test_a_holder_whose_starter_was_killed_before_the_record_exits_by_itself(
    net_env: Path,
) -> None:
    """Between the holder's start and its record (holder.json) no reap can find it: a
    caller killed there must not leave a `sleep infinity` behind (the kill -9 suite
    found one after `up`). The holder waits for its caller's word, and exits without."""
    out = subprocess.run(
        [PY, "-c", KILLED_BEFORE_RECORD], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    pid, start = map(int, out.stdout.split())
    left = state.Proc(pid, start)
    try:
        wait_for(lambda: not left.alive(), "the unrecorded holder to exit", timeout=10)
    finally:
        left.kill()  # a failed run must not leak it either
    assert state.load_daemons() is None
