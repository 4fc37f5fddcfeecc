"""Real envkit containers on networks, through the CLI and the Python API: names, UDP,
isolation, internal networks, published ports, restarts and tear-down.

Run as root here and as an unprivileged user by scripts/test-rootless.sh. TCP goes
through busybox httpd and ``timeout 3 wget`` (busybox 1.35's ``wget -T`` crashes); UDP
through the host's /usr/bin/python3, bind-mounted with /usr (this busybox's nc has no
UDP mode).
"""

from __future__ import annotations

import json
import os
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

import envkit
from envkit import network
from envkit.container import handle as containers
from envkit.network import state
from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless

IMAGE = "netbox:1"
PYTHON = "/usr/bin/python3"
USR = "/usr:/usr:ro"
PAGE = "hello from {name}\n"
# A UDP echo server on 7001 answering "<name>:<data>".
UDP_SERVER = """
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 7001))
while True:
    data, peer = u.recvfrom(100)
    u.sendto(sys.argv[1].encode() + b":" + data, peer)
"""
# Sends "ping" to argv[1]:7001 (a name, resolved through /etc/hosts) until answered.
UDP_CLIENT = """
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(0.5)
for _ in range(40):
    try:
        u.sendto(b"ping", (sys.argv[1], 7001))
        print(u.recv(100).decode())
        break
    except OSError as exc:
        err = exc
        time.sleep(0.1)
else:
    print("error", type(err).__name__)
"""


# GET / from argv[1]:80 over each family (argv[2:]: "4", "6"), the name resolved through
# /etc/hosts; prints "<family> <first line of the answer or the error>" per family.
DUAL_CLIENT = """
import socket, sys, time
for fam in sys.argv[2:]:
    family = socket.AF_INET6 if fam == "6" else socket.AF_INET
    result = "none"
    for _ in range(30):
        try:
            addr = socket.getaddrinfo(sys.argv[1], 80, family, socket.SOCK_STREAM)[0][4]
            with socket.socket(family, socket.SOCK_STREAM) as c:
                c.settimeout(1)
                c.connect(addr)
                c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
                data = b""
                while chunk := c.recv(4096):
                    data += chunk
            result = data.split(b"\\r\\n\\r\\n", 1)[-1].decode().strip()
            break
        except OSError as exc:
            result = "error " + type(exc).__name__
            time.sleep(0.1)
    print(fam, result)
"""


def wget_loop(url: str, tries: int = 50) -> str:
    """A shell loop fetching ``url`` until it answers (servers start asynchronously)."""
    return (
        f"for i in $(seq {tries}); do timeout 3 wget -qO- {url} && exit 0; sleep 0.1; done; "
        "echo unreachable; exit 1"
    )


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    homes.require_containers()
    if not os.path.exists(PYTHON):
        pytest.skip(f"{PYTHON} missing (the UDP peers run it)")
    work = tmp_path_factory.mktemp("run-network")
    extra = images.layer_tar(
        {
            "etc/nsswitch.conf": b"hosts: files dns\n",
            "www/index.html": b"hello from the image\n",
        },
        dirs=("www", "usr"),
        symlinks={"lib": "usr/lib", "lib64": "usr/lib64"},
    )
    return homes.loaded_home(work, [images.busybox_layer(), extra], IMAGE)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    yield loaded_home
    from envkit.runtime import state as runtime_state

    for record in runtime_state.all_states():
        cli(loaded_home, ["rm", "-f", record.id])
    for net in network.list_networks():
        network.remove(net.name)
    assert_nothing_left(loaded_home)


cli = homes.cli


def ok(home: Path, argv: list[str]) -> str:
    done = cli(home, argv)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.stdout


def httpd(home: Path, name: str, *options: str) -> None:
    """A detached busybox httpd serving ``hello from NAME`` on port 80."""
    script = (
        f"echo '{PAGE.format(name=name).strip()}' > /www/index.html; exec httpd -f -p 80 -h /www"
    )
    ok(home, ["run", "-d", "--name", name, *options, IMAGE, "sh", "-c", script])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def assert_nothing_left(home: Path) -> None:
    """No holder, network daemon, published port, endpoint or managed file of any
    container."""
    root = home / "network"
    assert not (root / "holder.json").exists()
    assert not list((root / "endpoints").glob("*/*.json"))
    assert not list((root / "forwarders").glob("*.json"))
    assert not list((root / "hosts").glob("*"))
    for log in (root / "logs").glob("*.log"):
        assert not holders_of(log.stem), f"a {log.stem} daemon still runs"


def holders_of(daemon: str) -> list[int]:
    """Pids of processes whose stderr is the log of ``daemon`` (ours, in this home)."""
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            target = os.readlink(f"/proc/{pid}/fd/2")
        except OSError:
            continue
        if target.endswith(f"/network/logs/{daemon}.log") and os.environ["ENVKIT_HOME"] in target:
            found.append(pid)
    return found


def test_containers_on_one_network_reach_each_other_by_name(home: Path) -> None:
    ok(home, ["network", "create", "app"])
    httpd(home, "web", "--network", "app", "--network-alias", "www")
    udp_server = [PYTHON, "-c", UDP_SERVER, "echo"]
    ok(home, ["run", "-d", "--name", "echo", "--network", "app", "-v", USR, IMAGE, *udp_server])
    tcp = ok(home, ["run", "--rm", "--network", "app", IMAGE, "sh", "-c", wget_loop("web")])
    assert tcp == "hello from web\n"
    alias = ok(home, ["run", "--rm", "--net", "app", IMAGE, "sh", "-c", wget_loop("www")])
    assert alias == "hello from web\n"
    udp = ok(
        home,
        ["run", "--rm", "--network", "app", "-v", USR, IMAGE, PYTHON, "-c", UDP_CLIENT, "echo"],
    )
    assert udp == "echo:ping\n"
    # A container resolves itself, and its peers appear in its managed /etc/hosts.
    hosts = ok(home, ["exec", "web", "cat", "/etc/hosts"])
    assert "\tweb\n" in hosts and "\techo\n" in hosts and "\twww\n" in hosts


def test_containers_on_two_networks_cannot_reach_each_other(home: Path) -> None:
    ok(home, ["network", "create", "red"])
    ok(home, ["network", "create", "blue"])
    httpd(home, "redweb", "--network", "red")
    ip = json.loads(ok(home, ["network", "inspect", "red"]))[0]["containers"]["redweb"]["ip"]
    same = ok(home, ["run", "--rm", "--network", "red", IMAGE, "sh", "-c", wget_loop(ip)])
    assert same == "hello from redweb\n"
    by_ip = cli(home, ["run", "--rm", "--network", "blue", IMAGE, "sh", "-c", wget_loop(ip, 2)])
    assert by_ip.returncode == 1 and by_ip.stdout.endswith("unreachable\n")
    by_name = cli(home, ["run", "--rm", "--network", "blue", IMAGE, "wget", "-qO-", "redweb"])
    # busybox wget exits 1 on a name it cannot resolve.
    assert by_name.returncode == 1 and "bad address 'redweb'" in by_name.stderr, by_name.stderr


def test_internal_network_has_no_egress(home: Path, tmp_path: Path) -> None:
    # Egress is proven against a server on the host's loopback, reached through the egress
    # forwarder (host.envkit.internal on a --host-loopback network): tests send traffic
    # only to this machine's loopback and to namespaces they made.
    (tmp_path / "out.txt").write_text("from the host\n")
    with homes.host_http_server(tmp_path) as port:
        url = f"http://host.envkit.internal:{port}/out.txt"
        ok(home, ["network", "create", "open", "--host-loopback"])
        ok(home, ["network", "create", "sealed", "--internal", "--host-loopback"])
        out = ok(home, ["run", "--rm", "--network", "open", IMAGE, "sh", "-c", wget_loop(url)])
        assert out == "from the host\n"  # through the egress forwarder
        sealed = cli(
            home, ["run", "--rm", "--network", "sealed", IMAGE, "sh", "-c", wget_loop(url, 2)]
        )
        assert sealed.returncode == 1 and sealed.stdout.endswith("unreachable\n")
        resolv = ok(home, ["run", "--rm", "--network", "sealed", IMAGE, "cat", "/etc/resolv.conf"])
        assert "nameserver" not in resolv


def test_add_host_lines_and_host_gateway_reaching_the_hosts_loopback(
    home: Path, tmp_path: Path
) -> None:
    """docker's ``--add-host NAME:IP`` and ``NAME:host-gateway`` (compose's
    ``extra_hosts: [host.docker.internal:host-gateway]``): lines of the managed
    /etc/hosts; host-gateway is the host's loopback on a network that reaches it, and
    refused (exit 2, with the fix) on one that does not."""
    (tmp_path / "out.txt").write_text("from the host\n")
    with homes.host_http_server(tmp_path) as port:
        ok(home, ["network", "create", "tohost", "--host-loopback"])
        gateway = ["--add-host", "host.docker.internal:host-gateway"]
        both = ["--network", "tohost", "--add-host", "db.example:10.1.2.3", *gateway]
        hosts = ok(home, ["run", "--rm", *both, IMAGE, "cat", "/etc/hosts"])
        assert "10.1.2.3\tdb.example\n" in hosts
        assert "169.254.1.2\thost.docker.internal\n" in hosts
        url = f"http://host.docker.internal:{port}/out.txt"
        out = ok(home, ["run", "--rm", *both, IMAGE, "sh", "-c", wget_loop(url)])
        assert out == "from the host\n"
        refused = cli(home, ["run", "--rm", "--network", "envkit", *gateway, IMAGE, "true"])
        assert refused.returncode == 2 and "--host-loopback" in refused.stderr, refused
        alone = cli(home, ["run", "--rm", "--add-host", "a:10.0.0.1", IMAGE, "true"])
        assert alone.returncode == 2 and "--add-host needs a network" in alone.stderr, alone


def test_published_port_answers_from_the_host(home: Path) -> None:
    httpd(home, "pub", "-p", "0:80")
    (line,) = ok(home, ["port", "pub"]).splitlines()
    assert line.startswith("80/tcp -> 127.0.0.1:")
    port = int(line.rsplit(":", 1)[1])
    assert ok(home, ["port", "pub", "80"]) == f"127.0.0.1:{port}\n"
    assert f"127.0.0.1:{port}->80/tcp" in ok(home, ["ps"])
    url = f"http://127.0.0.1:{port}/index.html"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.read() == b"hello from pub\n")
        except OSError:
            return False

    wait_for(answers, "busybox httpd through the published port")
    # -p without --network joined the default network, created on first use.
    assert "pub" in network.inspect("envkit")["containers"]
    ok(home, ["stop", "-t", "2", "pub"])
    assert not listening(port)
    assert "->" not in ok(home, ["ps", "-a"])


def test_python_api_ports_and_udp(home: Path) -> None:
    with envkit.run(
        IMAGE,
        [PYTHON, "-c", UDP_SERVER, "api"],
        volumes=[USR],
        ports=["0:7001/udp"],
        name="api",
        init=True,  # python as pid 1 ignores the with-block's SIGTERM
    ) as container:
        port = container.port(7001, "udp")
        assert port > 0
        with pytest.raises(network.NetworkError, match="does not publish port 80/tcp"):
            container.port(80)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(0.5)
            replies: list[bytes] = []

            def answered() -> bool:
                u.sendto(b"x", ("127.0.0.1", port))
                try:
                    replies.append(u.recv(100))
                except OSError:
                    return False
                return True

            wait_for(answered, "the UDP echo through the published port")
        assert replies[-1] == b"api:x"
    assert not (home / "network" / "holder.json").exists()


def test_port_in_use_fails_before_the_container_starts(home: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = cli(home, ["run", "--name", "busy", "-p", f"{port}:80", IMAGE, "true"])
        assert done.returncode == 2
        assert f"host port 127.0.0.1:{port}/tcp is already in use" in done.stderr
        assert "hint:" in done.stderr and "Traceback" not in done.stderr
        assert ok(home, ["ps", "-a", "-q"]) == ""  # no container was made
        with pytest.raises(network.NetworkError, match="already in use"):
            envkit.run(IMAGE, ["true"], ports={port: 80})


def test_restarted_container_is_found_by_name_again(home: Path) -> None:
    ok(home, ["network", "create", "app"])
    httpd(home, "db", "--network", "app")
    ok(home, ["run", "-d", "--name", "client", "--network", "app", IMAGE, "sleep", "60"])
    first = ok(home, ["exec", "client", "sh", "-c", wget_loop("db")])
    assert first == "hello from db\n"
    old = network.inspect("app")["containers"]["db"]["ip"]
    ok(home, ["rm", "-f", "db"])
    script = "echo 'hello from the new db' > /www/index.html; exec httpd -f -p 80 -h /www"
    ok(home, ["run", "-d", "--name", "db", "--network", "app", IMAGE, "sh", "-c", script])
    new = network.inspect("app")["containers"]["db"]["ip"]
    assert new != old
    hosts = ok(home, ["exec", "client", "cat", "/etc/hosts"])
    assert f"{new}\tdb\n" in hosts and f"{old}\t" not in hosts
    assert ok(home, ["exec", "client", "sh", "-c", wget_loop("db")]) == "hello from the new db\n"


def test_nothing_left_after_rm_exit_and_kill_9(home: Path) -> None:
    # Foreground --rm: gone when the command exits.
    out = ok(home, ["run", "--rm", "-p", "0:80", IMAGE, "cat", "/etc/resolv.conf"])
    assert "nameserver 10.89." in out
    assert_nothing_left(home)
    # A detached container whose monitor is killed with SIGKILL outlives it (the next
    # command's monitor adopts it), and so do its network and its published port; rm -f
    # then takes everything down.
    httpd(home, "victim", "-p", "0:80")
    port = int(ok(home, ["port", "victim", "80"]).rsplit(":", 1)[1])
    wait_for(lambda: listening(port), "the published port")
    daemons = holders_of("netd")  # the network daemon serves the published ports
    assert len(daemons) == 1
    record = containers.get("victim").reload()
    os.kill(record.supervisor, signal.SIGKILL)
    assert "victim" in ok(home, ["ps"])
    assert listening(port)
    assert "victim" in network.inspect("envkit")["containers"]
    ok(home, ["rm", "-f", "victim"])
    assert not listening(port)
    wait_for(lambda: all(state.start_time(p) is None for p in daemons), "the daemon to stop")
    assert_nothing_left(home)


def test_no_network_by_default(home: Path) -> None:
    out = ok(home, ["run", "--rm", IMAGE, "sh", "-c", "cat /proc/net/dev /etc/hosts 2>&1; true"])
    assert "eth0" not in out and "lo:" in out and "managed by envkit" not in out
    refused = cli(home, ["run", "--rm", "--network", "none", "-p", "0:80", IMAGE, "true"])
    assert refused.returncode == 2 and "--network none" in refused.stderr
    # docker's --network none: loopback only (it used to fail on the hostname's alias)
    alone = cli(home, ["run", "--rm", "--network", "none", IMAGE, "cat", "/proc/net/dev"])
    assert alone.returncode == 0 and "lo:" in alone.stdout and "eth0" not in alone.stdout, alone
    # docker's --network host: the caller's network namespace, alone
    hostnet = cli(home, ["run", "--rm", "--network", "host", IMAGE, "cat", "/proc/net/dev"])
    assert hostnet.returncode == 0, hostnet
    assert hostnet.stdout.count(":") == Path("/proc/net/dev").read_text().count(":")
    both = cli(home, ["run", "--rm", "--network", "host", "-p", "0:80", IMAGE, "true"])
    assert both.returncode == 2 and "--network host" in both.stderr, both
    missing = cli(home, ["run", "--rm", "--network", "nosuch", IMAGE, "true"])
    assert missing.returncode == 2 and "envkit network create nosuch" in missing.stderr
    assert not (home / "network" / "holder.json").exists()


def test_one_process_starts_and_stops_containers_concurrently(home: Path) -> None:
    """Holder leases are per container: one leaving never stops the holder under another
    that is starting (its monitor would fail to join the holder: setns EPERM)."""
    from envkit.network import holder
    from envkit.network.attach import Attachment

    ok(home, ["network", "create", "app"])
    sleeper: tuple[str, list[str]] = (IMAGE, ["sleep", "60"])
    one = envkit.run(*sleeper, network="app", name="one")
    two = envkit.run(*sleeper, network="app", name="two")
    # The window of the race, held open: a container in the holder's user namespace,
    # not connected yet, while every connected container leaves.
    pending = Attachment.plan("pending", ["app"])
    assert pending is not None
    pending.userns()
    before = holder.current()
    assert before is not None
    one.stop(timeout=1)
    two.stop(timeout=1)
    after = holder.current()
    assert after is not None and after.holder == before.holder
    pending.release()
    assert holder.current() is None
    one.remove()
    two.remove()

    # The real thing: a third starts in a thread while the first stops.
    one = envkit.run(*sleeper, network="app", name="one")
    two = envkit.run(*sleeper, network="app", name="two")
    started: list[containers.Container] = []
    failed: list[BaseException] = []

    def start_third() -> None:
        try:
            started.append(envkit.run(*sleeper, network="app", name="three"))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=start_third)
    thread.start()
    one.stop(timeout=1)
    thread.join()
    assert not failed, failed
    (three,) = started
    assert set(network.inspect("app")["containers"]) == {"two", "three"}
    two.stop(timeout=1)
    assert holder.current() is not None  # three still runs
    three.stop(timeout=1)
    assert holder.current() is None
    assert not list((home / "network" / "leases").glob("*.json"))
    for container in (one, two, three):
        container.remove()


def dual_client(home: Path, network_name: str, target: str, *families: str) -> str:
    """Run :data:`DUAL_CLIENT` in a fresh container on ``network_name``."""
    argv = [PYTHON, "-c", DUAL_CLIENT, target, *families]
    done = cli(home, ["run", "--rm", "--network", network_name, "-v", USR, IMAGE, *argv])
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dual_stack_containers_reach_each_other_by_name_over_both_families(home: Path) -> None:
    ok(home, ["network", "create", "--ipv6", "dual"])
    info = json.loads(ok(home, ["network", "inspect", "dual"]))[0]
    assert info["ipv6"] is True and info["subnet6"].endswith("::/64")
    httpd(home, "web6", "--network", "dual", "--network-alias", "www6")
    web = json.loads(ok(home, ["network", "inspect", "dual"]))[0]["containers"]["web6"]
    assert web["ip6"].startswith(info["subnet6"].split("::")[0])
    hosts = ok(home, ["exec", "web6", "cat", "/etc/hosts"])
    assert f"{web['ip']}\tweb6\n" in hosts and f"{web['ip6']}\tweb6\n" in hosts
    both = dual_client(home, "dual", "web6", "4", "6")
    assert both == "4 hello from web6\n6 hello from web6\n"
    assert dual_client(home, "dual", "www6", "6") == "6 hello from web6\n"
    # The container's own view: its IPv6 address and an IPv6 default route.
    inside = ok(home, ["exec", "web6", "cat", "/proc/net/if_inet6", "/proc/net/ipv6_route"])
    packed = web["ip6"]
    import ipaddress

    assert ipaddress.IPv6Address(packed).exploded.replace(":", "") in inside


def test_dual_stack_networks_stay_isolated_for_both_families(home: Path) -> None:
    ok(home, ["network", "create", "--ipv6", "red6"])
    ok(home, ["network", "create", "--ipv6", "blue6"])
    httpd(home, "redweb6", "--network", "red6")
    web = json.loads(ok(home, ["network", "inspect", "red6"]))[0]["containers"]["redweb6"]
    same = dual_client(home, "red6", web["ip6"], "6")
    assert same == "6 hello from redweb6\n"
    for address, family in ((web["ip6"], "6"), (web["ip"], "4")):
        other = dual_client(home, "blue6", address, family)
        assert other.startswith(f"{family} error"), other


def test_published_port_answers_on_both_loopbacks(home: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    httpd(home, "pub6", "-p", "0:80")
    (line,) = ok(home, ["port", "pub6"]).splitlines()  # one line per -p, as docker
    port = int(line.rsplit(":", 1)[1])
    for url in (f"http://127.0.0.1:{port}/index.html", f"http://[::1]:{port}/index.html"):

        def answers(url: str = url) -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return bool(r.read() == b"hello from pub6\n")
            except OSError:
                return False

        wait_for(answers, f"busybox httpd through {url}")
    ok(home, ["rm", "-f", "pub6"])
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as probe, pytest.raises(ConnectionRefusedError):
            probe.settimeout(2)
            probe.connect((host, port))


def test_a_networked_command_never_imports_pyroute2(home: Path) -> None:
    """pyroute2 is the network daemon's: ``envkit run`` with a network (cold: the daemon
    starts; warm: it serves) loads none of it in the command's own process."""
    ok(home, ["network", "create", "--ipv6", "light"])
    argv = [sys.executable, "-X", "importtime", "-m", "envkit", "run", "--rm", "--network"]
    for warm in (False, True):  # cold: the command starts the daemon; warm: it serves
        if warm:
            ok(home, ["run", "-d", "--name", "keeper", "--network", "light", IMAGE, "sleep", "60"])
        done = subprocess.run(
            [*argv, "light", "-p", "0:80", IMAGE, "true"],
            capture_output=True,
            text=True,
            env={**os.environ, "ENVKIT_HOME": str(home)},
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        imported = [line for line in done.stderr.splitlines() if "import time:" in line]
        assert any("envkit.network.control" in line for line in imported)  # the check works
        assert not [line for line in imported if "pyroute2" in line]
