"""Stacks on the real runtime: start order with health, names across services, published
ports, restart policies, volumes across down/up, runtime secrets never on disk, failed
``up`` leaving nothing, foreground ``up`` and Ctrl-C, ``down`` after kill -9 of the
supervisor, and the CLI verbs, each from another process than the one that started it."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envkit import Healthcheck, Secret, Service, Stack, Volume
from envkit.errors import EnvkitError
from envkit.stack import DependencyError, RunningStack, down
from envkit.stack import state as ss
from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"
APPLETS = (*images.APPLETS, "httpd", "timeout", "wc", "tail", "ip")
SECRET_VALUE = "pa55-word-7f3c9e"


def busybox_layer() -> bytes:
    """The test busybox plus httpd, timeout, wc and tail, and a /www dir."""
    files = {
        "bin/busybox": images.BUSYBOX.read_bytes(),
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }
    return images.layer_tar(
        files,
        dirs=("dev", "proc", "sys", "tmp", "root", "etc", "www", "run"),
        symlinks={f"bin/{a}": "busybox" for a in APPLETS},
        executable=("bin/busybox",),
    )


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("stacks"), [busybox_layer()], BUSYBOX)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    monkeypatch.setenv("STACK_TEST_SECRET", SECRET_VALUE)
    yield loaded_home
    for record in ss.all_stacks():
        down(record.name, volumes=True)
    from envkit.runtime import state

    assert ss.all_stacks() == []
    assert state.all_states() == [], "a stack left containers behind"


def cli(
    home: Path, argv: list[str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return homes.cli(home, argv, timeout=timeout, cwd=cwd, env={"STACK_TEST_SECRET": SECRET_VALUE})


def wait_for(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def web_service(**extra: object) -> Service:
    """httpd that becomes healthy only once it wrote /tmp/ready, 0.5 s after start."""
    script = (
        "echo hello-from-web > /www/index.html; sleep 0.5; touch /tmp/ready; "
        "exec httpd -f -p 8080 -h /www"
    )
    return Service(
        "web",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", script],
        healthcheck=Healthcheck(["test", "-f", "/tmp/ready"], interval=0.1, retries=100),
        **extra,  # type: ignore[arg-type]
    )


def leftovers(home: Path) -> list[str]:
    """Containers, stack dirs, networks and secret dirs of this home still present."""
    from envkit import network
    from envkit.runtime import state

    found = [f"container {s.name}" for s in state.all_states()]
    found += [f"stack {s.name}" for s in ss.all_stacks()]
    found += [f"network {n.name}" for n in network.list_networks()]
    return found


def test_client_reaches_web_by_name_after_it_is_healthy(home: Path) -> None:
    web = web_service(ports={0: 8080})
    client = Service(
        "client",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", "timeout 3 wget -q -O - http://web:8080/ && sleep 600"],
        depends_on={web: "healthy"},
    )
    stack = Stack("names", services=[web, client])
    with stack.up() as running:
        assert running["web"].health == "healthy"
        wait_for(lambda: "hello-from-web" in running["client"].logs())
        assert running["client"].status == "running"  # wget succeeded: no exit
        port = running["web"].port(8080)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"hello-from-web\n"
        result = running["web"].exec(["cat", "/tmp/ready"])
        assert result.exit_code == 0
        assert "client | hello-from-web" in running.logs()
    assert leftovers(home) == []


def test_a_stack_network_with_ipv6_is_dual_stack(home: Path) -> None:
    from envkit import Network

    net = Network("dual", ipv6=True)
    server = Service(
        "server",
        image=BUSYBOX,
        init=True,
        command=["sh", "-c", "while true; do echo hi-over-v6 | nc -l -p 9000; done"],
        networks=[net],
    )
    client = Service("client", image=BUSYBOX, init=True, command=["sleep", "600"], networks=[net])
    with Stack("dual", services=[server, client]).up() as running:
        hosts = running["client"].exec(["cat", "/etc/hosts"]).output
        v6 = [line.split()[0] for line in hosts.splitlines() if line.endswith("\tserver")]
        v6 = [address for address in v6 if ":" in address]
        assert v6, hosts  # the name resolves to an IPv6 address too
        answer = running["client"].exec(["sh", "-c", f"echo | timeout 3 nc {v6[0]} 9000"])
        assert answer.output == "hi-over-v6\n", answer
    assert leftovers(home) == []


def test_restart_policies(home: Path) -> None:
    flaky = Service(
        "flaky",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", "echo run; exit 3"],
        restart="on-failure:2",
    )
    steady = Service(
        "steady", init=True, image=BUSYBOX, command=["sh", "-c", "sleep 600"], restart="always"
    )
    once = Service("once", init=True, image=BUSYBOX, command=["true"], restart="no")
    stack = Stack("restarts", services=[flaky, steady, once])
    with stack.up() as running:
        wait_for(lambda: running.state().services["flaky"].restarts == 2)
        wait_for(lambda: running["flaky"].status == "exited")
        assert running.state().services["flaky"].exit_code == 3
        assert running["flaky"].logs() == "run\nrun\nrun\n"
        wait_for(lambda: running["once"].status == "exited")
        assert running.state().services["once"].restarts == 0
        first = running["steady"].container().id
        running["steady"].container().kill(signal.SIGKILL)
        wait_for(lambda: running.state().services["steady"].restarts == 1)
        wait_for(lambda: running["steady"].status == "running")
        assert running["steady"].container().id != first
    assert leftovers(home) == []


def test_volume_persists_across_down_and_up_until_down_v(home: Path) -> None:
    data = Volume("data")
    counter = Service(
        "counter",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", "echo x >> /data/count; sleep 600"],
        volumes={data: "/data"},
    )
    stack = Stack("vols", services=[counter])
    for expected in ("1", "2"):
        with stack.up() as running:
            wait_for(lambda: running["counter"].exec(["test", "-s", "/data/count"]).exit_code == 0)
            out = running["counter"].exec(["wc", "-l", "/data/count"]).output
            assert out.split()[0] == expected
    assert "vols_data" in cli(home, ["volume", "ls", "-q"]).stdout.split()
    down(stack, volumes=True)
    assert "vols_data" not in cli(home, ["volume", "ls", "-q"]).stdout.split()


def test_compose_anonymous_volumes_live_as_long_as_the_stack(home: Path, tmp_path: Path) -> None:
    """compose's ``- /project/deps`` under a bind mount of ``./app:/project`` (the
    node_modules pattern) and ``- /etc``: each is a volume of its own, seeded from the
    image (/etc), hiding the host directory (deps), kept when the service's container is
    recreated (as compose carries it over) and removed by ``down``; the next ``up``
    starts from a fresh one."""
    app = tmp_path / "app"
    app.mkdir()
    if os.geteuid() == 0:
        # as root, container root is a subordinate id that may not create the mount point
        # in the host's directory (the error says so); rootless, the runtime creates it
        (app / "deps").mkdir()
    (tmp_path / "compose.yaml").write_text(
        "name: anon\n"
        "services:\n"
        "  web:\n"
        f"    image: {BUSYBOX}\n"
        "    init: true\n"
        "    command: [sh, -c, 'echo run >> /project/deps/runs; sleep 600']\n"
        "    volumes:\n"
        "      - ./app:/project\n"
        "      - /project/deps\n"
        "      - type: volume\n"
        "        target: /etc\n"
    )
    stack = Stack.from_compose(tmp_path / "compose.yaml")
    anonymous = sorted(v.name for v in stack.volumes)
    assert len(anonymous) == 2 and all(v.anonymous for v in stack.volumes), stack.volumes

    def runs(running: RunningStack) -> int:
        out = running["web"].exec(["cat", "/project/deps/runs"]).output
        return len(out.split())

    with stack.up() as running:
        wait_for(lambda: running["web"].exec(["test", "-s", "/project/deps/runs"]).exit_code == 0)
        assert running["web"].exec(["grep", "-q", "^root:", "/etc/passwd"]).exit_code == 0
        listed = cli(home, ["volume", "ls", "-q"]).stdout.split()
        assert sorted(n for n in listed if n.startswith("anon_")) == [
            f"anon_{name}" for name in anonymous
        ]
        running.restart("web")
        wait_for(lambda: runs(running) == 2)
    assert not (app / "deps" / "runs").exists(), "the volume did not hide the host directory"
    assert not [
        n for n in cli(home, ["volume", "ls", "-q"]).stdout.split() if n.startswith("anon_")
    ]
    with stack.up() as running:
        wait_for(lambda: running["web"].exec(["test", "-s", "/project/deps/runs"]).exit_code == 0)
        assert runs(running) == 1
    assert leftovers(home) == []


def test_shm_size_and_tmpfs_options_reach_the_container(home: Path) -> None:
    """compose's ``shm_size`` and a tmpfs's ``size``/``mode`` (before, the supervisor
    dropped a tmpfs's options and /dev/shm was always 64m); ``envkit run`` takes
    docker's ``--shm-size`` and ``--tmpfs PATH:OPTS`` the same way."""
    web = Service(
        "web",
        image=BUSYBOX,
        init=True,
        command=["sleep", "600"],
        shm_size="8m",
        tmpfs=["/run:size=1m,mode=1770"],
    )

    def options(mounts: str) -> dict[str, str]:
        """The mount options of each mount point in /proc/mounts text."""
        return {f[1]: f[3] for f in (line.split() for line in mounts.splitlines()) if len(f) > 3}

    with Stack("shm", services=[web]).up() as running:
        found = options(running["web"].exec(["cat", "/proc/mounts"]).output)
        assert "size=8192k" in found["/dev/shm"].split(","), found["/dev/shm"]
        assert {"size=1024k", "mode=1770"} <= set(found["/run"].split(",")), found["/run"]
    sized = ["--shm-size", "16m", "--tmpfs", "/scratch:size=2m"]
    done = cli(home, ["run", "--rm", *sized, BUSYBOX, "cat", "/proc/mounts"])
    assert done.returncode == 0, done.stderr
    found = options(done.stdout)
    assert "size=16384k" in found["/dev/shm"].split(",") and "size=2048k" in found["/scratch"]
    assert leftovers(home) == []


def test_a_service_without_seccomp_runs_unfiltered_and_the_default_is_filtered(
    home: Path,
) -> None:
    """compose's ``security_opt: [seccomp=unconfined]`` (``Service(seccomp=False)``)."""
    plain = Service("plain", image=BUSYBOX, init=True, command=["sleep", "600"])
    loose = Service("loose", image=BUSYBOX, init=True, command=["sleep", "600"], seccomp=False)
    with Stack("sec", services=[plain, loose]).up() as running:
        modes = {
            name: running[name].exec(["grep", "^Seccomp:", "/proc/self/status"]).output.split()
            for name in ("plain", "loose")
        }
    assert modes == {"plain": ["Seccomp:", "2"], "loose": ["Seccomp:", "0"]}
    assert leftovers(home) == []


def test_ulimits_reach_the_container_and_one_above_the_hard_limit_is_refused(
    home: Path,
) -> None:
    """compose's ``ulimits`` (``Service(ulimits=...)``) and ``run --ulimit``: lower limits
    than envkit's own always work (root and rootless); a hard limit above envkit's own is
    refused with exit 2 naming it, unless envkit may raise it (CAP_SYS_RESOURCE)."""
    web = Service(
        "web",
        image=BUSYBOX,
        init=True,
        command=["sleep", "600"],
        ulimits={"nofile": (512, 1024), "core": 0},
    )
    with Stack("lim", services=[web]).up() as running:
        shown = running["web"].exec(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"]).output
    assert shown.split() == ["512", "1024", "0"]
    done = cli(
        home, ["run", "--rm", "--ulimit", "nofile=256:300", BUSYBOX, "sh", "-c", "ulimit -n"]
    )
    assert done.returncode == 0 and done.stdout.split() == ["256"], done
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    above = min(hard + 1, 1 << 20)  # fs.nr_open's default caps nofile for everyone
    with open("/proc/self/status") as status:
        may_raise = any(
            line.startswith("CapEff:") and int(line.split()[1], 16) >> 24 & 1 for line in status
        )
    if above > hard and not may_raise:
        refused = cli(home, ["run", "--rm", "--ulimit", f"nofile={above}", BUSYBOX, "true"])
        assert refused.returncode == 2, refused
        assert f"ulimit nofile={above}:{above}: above this user's hard limit" in refused.stderr
    assert leftovers(home) == []


def test_extra_hosts_host_gateway_reaches_a_server_on_the_hosts_loopback(
    home: Path, tmp_path: Path
) -> None:
    """compose's ``extra_hosts: [host.docker.internal:host-gateway]``: the stack's
    network is made to reach the host's loopback, where a test server answers."""
    (tmp_path / "out.txt").write_text("from the host\n")
    with homes.host_http_server(tmp_path) as port:
        app = Service(
            "app",
            image=BUSYBOX,
            init=True,
            command=["sleep", "600"],
            extra_hosts=["host.docker.internal:host-gateway", "db.example:10.1.2.3"],
        )
        url = f"http://host.docker.internal:{port}/out.txt"
        with Stack("gw", services=[app]).up() as running:
            hosts = running["app"].exec(["cat", "/etc/hosts"]).output
            assert "10.1.2.3\tdb.example\n" in hosts
            fetched = running["app"].exec(["wget", "-qO-", url])
            assert fetched.output == "from the host\n", fetched
    assert leftovers(home) == []


def test_sysctls_of_the_containers_namespaces_are_set_and_the_hosts_untouched(
    home: Path,
) -> None:
    """compose's ``sysctls`` (wireguard's ``net.ipv4.conf.all.src_valid_mark=1``, redis's
    ``net.core.somaxconn``) and ``run --sysctl``: written in the container's own network
    namespace, never the host's."""
    host_value = Path("/proc/sys/net/core/somaxconn").read_text()
    web = Service(
        "web",
        image=BUSYBOX,
        init=True,
        command=["sleep", "600"],
        sysctls={"net.core.somaxconn": 511, "net.ipv4.conf.all.src_valid_mark": 1},
    )
    with Stack("sys", services=[web]).up() as running:
        shown = (
            running["web"]
            .exec(
                [
                    "cat",
                    "/proc/sys/net/core/somaxconn",
                    "/proc/sys/net/ipv4/conf/all/src_valid_mark",
                ]
            )
            .output
        )
    assert shown.split() == ["511", "1"]
    one = ["--sysctl", "net.core.somaxconn=600"]
    done = cli(home, ["run", "--rm", *one, BUSYBOX, "cat", "/proc/sys/net/core/somaxconn"])
    assert done.stdout == "600\n", done
    refused = cli(home, ["run", "--rm", "--sysctl", "kernel.panic=1", BUSYBOX, "true"])
    assert refused.returncode == 2 and "not a parameter of the container's" in refused.stderr
    assert Path("/proc/sys/net/core/somaxconn").read_text() == host_value
    assert leftovers(home) == []


def test_network_mode_host_shares_the_hosts_network_and_none_has_loopback_only(
    home: Path,
) -> None:
    """compose's ``network_mode: host`` (plex's) and ``none``; exec (health checks
    too) works in both, and a host-network service cannot change the host's links."""
    host = Service("media", image=BUSYBOX, init=True, command=["sleep", "600"], network_mode="host")
    none = Service("job", image=BUSYBOX, init=True, command=["sleep", "600"], network_mode="none")
    host_links = Path("/proc/net/dev").read_text().count(":")
    with Stack("nm", services=[host, none]).up() as running:
        seen = running["media"].exec(["cat", "/proc/net/dev"]).output.count(":")
        assert seen == host_links
        down = running["media"].exec(["ip", "link", "set", "lo", "down"])
        assert down.exit_code != 0 and "not permitted" in down.output, down
        alone = running["job"].exec(["cat", "/proc/net/dev"]).output
        assert "lo:" in alone and alone.count(":") == 1
    assert leftovers(home) == []


def test_an_empty_named_volume_belongs_to_the_service_user(home: Path) -> None:
    # As an unprivileged caller too: the dir is handed to the container user's
    # subordinate id from inside a user namespace (a plain chown is refused there).
    data = Volume("owned")
    writer = Service(
        "writer",
        init=True,
        image=BUSYBOX,
        user="nobody",
        command=["sleep", "600"],
        volumes={data: "/data"},
    )
    stack = Stack("ownvol", services=[writer])
    with stack.up() as running:
        wrote = running["writer"].exec(["sh", "-c", "touch /data/f && ls -nd /data"])
    down(stack, volumes=True)
    assert wrote.exit_code == 0, wrote.output
    assert wrote.output.split()[2:4] == ["65534", "65534"], wrote.output


def test_volume_rm_removes_what_a_container_user_wrote(home: Path) -> None:
    # Unprivileged, those files belong to a subordinate id: `volume rm` must remove them
    # from inside a user namespace, not fail with a PermissionError.
    data = Volume("written")
    writer = Service(
        "writer",
        init=True,
        image=BUSYBOX,
        user="nobody",
        command=["sh", "-c", "mkdir /data/d && echo x > /data/d/f && sleep 600"],
        volumes={data: "/data"},
    )
    stack = Stack("rmvol", services=[writer])
    with stack.up() as running:
        wait_for(lambda: running["writer"].exec(["test", "-s", "/data/d/f"]).exit_code == 0)
    done = cli(home, ["volume", "rm", "rmvol_written"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "rmvol_written\n", "")
    assert "rmvol_written" not in cli(home, ["volume", "ls", "-q"]).stdout.split()


def test_secret_is_mounted_and_never_written_to_envkit_home(home: Path) -> None:
    reader = Service(
        "reader",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", "sleep 600"],
        secrets=[Secret.from_env("STACK_TEST_SECRET", as_name="x")],
    )
    stack = Stack("secrets", services=[reader])
    with stack.up() as running:
        assert running["reader"].exec(["cat", "/run/secrets/x"]).output == SECRET_VALUE
        write = running["reader"].exec(["sh", "-c", "echo no > /run/secrets/x"])
        # Mounted read-only: the shell's redirection fails, as in docker (busybox sh: 1).
        assert (write.exit_code, "Read-only file system" in write.output) == (1, True), write
        secret_dir = Path(running.state().secrets_dir)
        assert (secret_dir.stat().st_mode & 0o777) == 0o700
        found = [str(p) for p in home.rglob("*") if _holds(p, SECRET_VALUE.encode())]
        assert found == [], "the secret value reached envkit's home"
    assert not secret_dir.exists()


def _holds(path: Path, needle: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    except OSError:
        return False


def test_unhealthy_dependency_fails_up_and_leaves_nothing(home: Path) -> None:
    sick = Service(
        "sick",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", "echo booting; sleep 600"],
        healthcheck=Healthcheck("echo not-ready-yet; exit 1", interval=0.05, retries=3),
    )
    app = Service(
        "app", init=True, image=BUSYBOX, command=["sleep", "600"], depends_on={sick: "healthy"}
    )
    stack = Stack("sick", services=[sick, app])
    with pytest.raises(DependencyError) as caught:
        stack.up()
    message = str(caught.value)
    assert "app depends on sick being healthy" in message
    assert "not-ready-yet" in message
    assert "booting" in message
    assert leftovers(home) == []


def test_completed_condition_waits_for_a_successful_exit(home: Path) -> None:
    init = Service("init", init=True, image=BUSYBOX, command=["sh", "-c", "sleep 0.3; echo seeded"])
    app = Service(
        "app", init=True, image=BUSYBOX, command=["sleep", "600"], depends_on={init: "completed"}
    )
    with Stack("jobs", services=[init, app]).up() as running:
        state = running.state()
        assert state.services["init"].status == "exited"
        assert state.services["init"].exit_code == 0
        assert state.services["app"].status == "running"


def test_cli_up_detached_ps_logs_exec_down(home: Path, tmp_path: Path) -> None:
    (tmp_path / "stack.py").write_text(
        "from envkit import Service, Stack\n"
        "s = Service('echoer', init=True, image='busybox:1',\n"
        "            command=['sh', '-c', 'echo ready; sleep 600'])\n"
        "stack = Stack('clidemo', services=[s])\n"
    )
    up = cli(home, ["up", "-d"], cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    ps = cli(home, ["stack", "ps"], cwd=tmp_path)
    assert "echoer" in ps.stdout and "running" in ps.stdout
    wait_for(lambda: "echoer | ready" in cli(home, ["stack", "logs", "-p", "clidemo"]).stdout)
    done = cli(home, ["stack", "exec", "-p", "clidemo", "echoer", "sh", "-c", "exit 7"])
    assert done.returncode == 7
    for argv in (["logs", "-p", "clidemo", "nope"], ["exec", "-p", "clidemo", "nope", "true"]):
        bad = cli(home, ["stack", *argv])
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert "stack 'clidemo' has no service 'nope'" in bad.stderr and "echoer" in bad.stderr
    before = ss.require("clidemo").services["echoer"].container
    again = cli(home, ["up", "-d"], cwd=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stderr, again.stderr
    assert ss.require("clidemo").services["echoer"].container == before
    assert "clidemo" in cli(home, ["stack", "ls"]).stdout
    gone = cli(home, ["down"], cwd=tmp_path)
    assert gone.returncode == 0, gone.stderr
    assert leftovers(home) == []


def test_cli_errors_are_one_message(home: Path, tmp_path: Path) -> None:
    (tmp_path / "cycle.py").write_text(
        "from envkit import Service, Stack\n"
        "a = Service('a', init=True, image='busybox:1', depends_on=['b'])\n"
        "b = Service('b', init=True, image='busybox:1', depends_on=['a'])\n"
        "stack = Stack('cyc', services=[a, b])\n"
    )
    done = cli(home, ["up", "-d", str(tmp_path / "cycle.py")])
    assert done.returncode == 2
    assert "cycle" in done.stderr and "Traceback" not in done.stderr
    missing = cli(home, ["up", "-d", str(tmp_path / "nope.py")])
    assert missing.returncode == 2 and "no such stack file" in missing.stderr


def test_port_in_use_fails_up_and_leaves_nothing(home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = web_service(ports={port: 8080})
        with pytest.raises(EnvkitError, match="in use"):
            Stack("busyport", services=[web]).up()
    assert leftovers(home) == []


def test_foreground_up_streams_logs_and_stops_on_ctrl_c(home: Path, tmp_path: Path) -> None:
    (tmp_path / "stack.py").write_text(
        "from envkit import Service, Stack\n"
        "s = Service('talker', init=True, image='busybox:1',\n"
        "            command=['sh', '-c', 'while true; do echo tick; sleep 0.2; done'])\n"
        "stack = Stack('fg', services=[s])\n"
    )
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    with subprocess.Popen(
        [sys.executable, "-m", "envkit", "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line == "talker | tick\n"
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert code == 0
    assert leftovers(home) == []


def test_down_after_kill_9_of_the_supervisor(home: Path, tmp_path: Path) -> None:
    (tmp_path / "stack.py").write_text(
        "from envkit import Service, Stack\n"
        "s = Service('sleeper', init=True, image='busybox:1', command=['sleep', '600'])\n"
        "stack = Stack('killed', services=[s])\n"
    )
    assert cli(home, ["up", "-d"], cwd=tmp_path).returncode == 0
    record = ss.require("killed")
    os.kill(record.supervisor, signal.SIGKILL)
    wait_for(lambda: not record.supervised)
    assert "stale" in cli(home, ["stack", "ls"]).stdout
    assert cli(home, ["down", "-p", "killed"]).returncode == 0
    assert leftovers(home) == []


def test_web_and_client_example(home: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples/web-and-client"
    up = cli(home, ["up", "-d"], cwd=example)
    assert up.returncode == 0, up.stderr
    try:
        wait_for(lambda: "runs so far: 1" in cli(home, ["stack", "logs", "-p", "webdemo"]).stdout)
        logs = cli(home, ["stack", "logs", "-p", "webdemo"]).stdout
        assert "client | hello from web" in logs
        ps = cli(home, ["stack", "ps", "-p", "webdemo"]).stdout
        assert "healthy" in ps and "->8080/tcp" in ps
    finally:
        assert cli(home, ["down", "-v"], cwd=example).returncode == 0
    assert leftovers(home) == []


def test_up_locks_the_base_of_a_built_image_beside_the_stack_file(
    home: Path, tmp_path: Path
) -> None:
    (tmp_path / "stack.py").write_text(
        "from envkit import Image, Service, Stack\n"
        "img = Image.from_('busybox:1').run('echo built > /built')\n"
        "s = Service('b', init=True, image=img, command=['sh', '-c', 'cat /built; sleep 600'])\n"
        "stack = Stack('lockdemo', services=[s])\n"
    )
    up = cli(home, ["up", "-d"], cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    try:
        lock = json.loads((tmp_path / "envkit.lock").read_text())
        text = json.dumps(lock)
        assert "docker.io/library/busybox:1" in text and "sha256:" in text
    finally:
        assert cli(home, ["down"], cwd=tmp_path).returncode == 0
    assert leftovers(home) == []
