"""Stacks on the real runtime, second part: readiness probes shared by depends_on and
tests, ``up`` again recreating only what changed, stop/start/restart/top/port, the
control socket's privacy, env files and ``.env``, volume seeding from the image, and
bad stacks failing before anything starts."""

# The fixtures come from test_stack (imported below); tests taking them as arguments
# "redefine" them for ruff.
# ruff: noqa: F811

from __future__ import annotations

import os
import socket
import stat
import urllib.request
from pathlib import Path

import pytest

from envkit import Image, Secret, Service, Stack, Volume
from envkit.errors import EnvkitError, SpecError
from envkit.spec.readiness import Ready
from envkit.stack import DependencyError, down, up
from envkit.stack import state as ss
from tests.integration.test_stack import (  # noqa: F401 - fixtures
    BUSYBOX,
    cli,
    home,
    leftovers,
    loaded_home,
    wait_for,
)

pytestmark = pytest.mark.rootless

SERVER = (
    "mkdir -p /www && echo page > /www/index.html && sleep 0.3 && echo listening now && "
    "exec httpd -f -p 8080 -h /www"
)


def server(**extra: object) -> Service:
    return Service("server", init=True, image=BUSYBOX, command=["sh", "-c", SERVER], **extra)  # type: ignore[arg-type]


def test_ready_probes_gate_depends_on_and_serve_tests(home: Path) -> None:
    probes = [Ready.log(r"listening now"), Ready.tcp(8080), Ready.http("/", 8080)]
    client = Service(
        "client",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", "wget -q -O - http://server:8080/ && sleep 600"],
        depends_on={"server": "healthy"},
        restart="no",
    )
    stack = Stack("ready", services=[server(ready=probes), client])
    with stack.up() as running:
        assert running.state().services["server"].ready == "ready"
        assert running["server"].ready
        running["server"].wait_ready()
        wait_for(lambda: "page" in running["client"].logs())
        running["server"].wait_ready(Ready.http("/missing", 8080, status=404))
        with pytest.raises(DependencyError) as caught:
            running["server"].wait_ready(Ready.tcp(9999), timeout=0.3)
        assert "tcp port 9999 open" in caught.value.message
        assert "listening now" in caught.value.message  # the tail of its logs


def test_a_probe_that_times_out_fails_up_naming_it(home: Path) -> None:
    waiter = Service(
        "waiter",
        init=True,
        image=BUSYBOX,
        command=["sleep", "600"],
        depends_on={"server": "healthy"},
    )
    stack = Stack("never", services=[server(ready=Ready.tcp(9, timeout=0.5)), waiter])
    with pytest.raises(DependencyError) as caught:
        stack.up()
    message = caught.value.message
    assert "waiter depends on server" in message and "tcp port 9 open" in message
    assert leftovers(home) == []


def test_up_again_recreates_only_what_changed(home: Path) -> None:
    keep = Service("keep", init=True, image=BUSYBOX, command=["sleep", "600"])
    change = Service("change", init=True, image=BUSYBOX, command=["sh", "-c", "echo v1; sleep 600"])
    first = Stack("recreate", services=[keep, change])
    up(first, owned=False)
    try:
        before = ss.require("recreate").services
        up(first, owned=False)  # nothing changed: nothing recreated
        assert ss.require("recreate").services["change"].container == before["change"].container
        changed = Service(
            "change", init=True, image=BUSYBOX, command=["sh", "-c", "echo v2; sleep 600"]
        )
        added = Service("added", init=True, image=BUSYBOX, command=["sleep", "600"])
        running = up(Stack("recreate", services=[keep, changed, added]), owned=False)
        after = ss.require("recreate").services
        assert after["keep"].container == before["keep"].container
        assert after["change"].container != before["change"].container
        assert after["added"].status == "running"
        wait_for(lambda: "v2" in running["change"].logs())
        up(Stack("recreate", services=[keep]), owned=False)
        assert sorted(ss.require("recreate").services) == ["keep"]
        assert ss.require("recreate").services["keep"].container == before["keep"].container
    finally:
        down("recreate")
    assert leftovers(home) == []


def test_cli_stop_start_restart_top_port_and_ls(home: Path, tmp_path: Path) -> None:
    (tmp_path / "stack.py").write_text(
        "from envkit import Service, Stack\n"
        "from envkit.spec.readiness import Ready\n"
        f"web = Service('web', init=True, image='busybox:1', command=['sh', '-c', {SERVER!r}],\n"
        "              ports={0: 8080}, ready=Ready.http('/', 8080))\n"
        "stack = Stack('verbs', services=[web])\n"
    )
    assert cli(home, ["up", "-d"], cwd=tmp_path).returncode == 0
    try:
        port = cli(home, ["stack", "port", "-p", "verbs", "web", "8080"])
        assert port.returncode == 0, port.stderr
        address = port.stdout.strip()
        with urllib.request.urlopen(f"http://{address}/", timeout=5) as answer:
            assert answer.read() == b"page\n"
        top = cli(home, ["top", "-p", "verbs"])
        assert "httpd -f -p 8080" in top.stdout, top.stdout
        first = ss.require("verbs").services["web"].container
        assert cli(home, ["stack", "stop", "-p", "verbs", "web"]).returncode == 0
        assert ss.require("verbs").services["web"].status == "stopped"
        assert "stopped" in cli(home, ["stack", "ps", "-p", "verbs"]).stdout
        assert cli(home, ["start", "-p", "verbs"]).returncode == 0
        second = ss.require("verbs").services["web"]
        assert second.status == "running" and second.container != first
        assert cli(home, ["restart", "-p", "verbs", "web"]).returncode == 0
        assert ss.require("verbs").services["web"].container not in (first, second.container)
        assert "verbs" in cli(home, ["ls"]).stdout
        unknown = cli(home, ["restart", "-p", "verbs", "nope"])
        assert unknown.returncode == 2 and "no service 'nope'" in unknown.stderr
    finally:
        assert cli(home, ["down", "-p", "verbs"]).returncode == 0
    assert leftovers(home) == []


def test_control_socket_is_private_to_its_user(home: Path) -> None:
    stack = Stack(
        "private", services=[Service("s", init=True, image=BUSYBOX, command=["sleep", "600"])]
    )
    with stack.up() as running:
        path = running.state().control_path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        if os.geteuid() != 0:
            return
        # With the modes loosened, the peer credentials still refuse another user.
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o666)
        read_fd, write_fd = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - child
            try:
                os.chdir(path.parent)  # the dirs above are closed to the other user
                os.setuid(65534)
                conn = socket.socket(socket.AF_UNIX)
                conn.connect(path.name)
                conn.sendall(b'{"op": "ps"}\n')
                os.write(write_fd, conn.recv(4096))
            except OSError as exc:
                os.write(write_fd, str(exc).encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            answer = f.read()
        os.waitpid(child, 0)
        os.chmod(path.parent, 0o700)
        assert b"permission denied" in answer and b"services" not in answer


def test_env_file_and_dotenv_precedence_without_interpolation(home: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=from-dotenv\nB=from-dotenv\nC=from-dotenv\n")
    (tmp_path / "app.env").write_text(
        "# comment\nexport B='from-env-file'\nC=from-env-file\nD=$HOME\n"
    )
    show = Service(
        "show",
        init=True,
        image=BUSYBOX,
        command=["sh", "-c", "echo A=$A B=$B C=$C D=$D; sleep 600"],
        env={"C": "from-code"},
        env_file="app.env",
    )
    stack = Stack("envs", services=[show]).with_base_dir(tmp_path)
    with stack.up() as running:
        wait_for(lambda: "A=" in running["show"].logs())
        assert running["show"].logs().strip() == (
            "A=from-dotenv B=from-env-file C=from-code D=$HOME"
        )


def test_bad_stacks_fail_before_anything_starts(home: Path, tmp_path: Path) -> None:
    ok = Service("ok", init=True, image=BUSYBOX, command=["sleep", "600"])
    missing_secret = Service(
        "needs", init=True, image=BUSYBOX, command=["true"], secrets=[Secret.from_file("nope.txt")]
    )
    stack = Stack("bad", services=[ok, missing_secret]).with_base_dir(tmp_path)
    with pytest.raises(EnvkitError, match="nope"):
        stack.up()
    assert leftovers(home) == []
    missing_var = Service(
        "needs",
        init=True,
        image=BUSYBOX,
        command=["true"],
        secrets=[Secret.from_env("ENVKIT_NO_SUCH")],
    )
    with pytest.raises(EnvkitError, match="ENVKIT_NO_SUCH"):
        Stack("bad", services=[ok, missing_var]).up()
    no_file = Service("needs", init=True, image=BUSYBOX, command=["true"], env_file="missing.env")
    with pytest.raises(SpecError, match=r"missing\.env"):
        Stack("bad", services=[ok, no_file]).with_base_dir(tmp_path).up()
    assert leftovers(home) == []
    assert not (home / "volumes").exists() or not any((home / "volumes").rglob("bad_*"))


def test_seeding_keeps_the_owners_of_files_only_their_user_may_read(
    home: Path, tmp_path: Path
) -> None:
    """A 0700 directory of uid 1000 in the image seeds the volume with its owner kept;
    rootless, its files belong to a subordinate id the caller cannot read itself."""
    from envkit.host import idmap

    if idmap.plan().single_id:
        pytest.skip("a single-id map has no uid 1000")
    image = Image.from_(BUSYBOX).run(
        "mkdir /seed && echo only-mine > /seed/f && chown -R 1000:1000 /seed"
        " && chmod 0700 /seed && chmod 0600 /seed/f"
    )
    data = Volume("private")
    user = Service(
        "user",
        init=True,
        image=image,
        command=["sleep", "600"],
        volumes={data: "/seed"},
        user="1000",
    )
    stack = Stack("privseed", services=[user]).with_base_dir(tmp_path)
    with stack.up() as running:
        shown = running["user"].exec(["sh", "-c", "stat -c '%u %a' /seed /seed/f; cat /seed/f"])
        assert shown.output.splitlines() == ["1000 700", "1000 600", "only-mine"], shown.output
    down(stack, volumes=True)


def test_named_volume_is_seeded_from_the_image_on_first_use(home: Path, tmp_path: Path) -> None:
    image = Image.from_(BUSYBOX).run(
        "mkdir -p /seed/sub && echo from-image > /seed/sub/file && chmod 0750 /seed"
    )
    data = Volume("seeded")
    user = Service(
        "user", init=True, image=image, command=["sleep", "600"], volumes={data: "/seed"}
    )
    stack = Stack("seeding", services=[user]).with_base_dir(tmp_path)
    with stack.up() as running:
        assert running["user"].exec(["cat", "/seed/sub/file"]).output == "from-image\n"
        listing = running["user"].exec(["ls", "-ld", "/seed"]).output
        assert listing.startswith("drwxr-x---"), listing
        running["user"].exec(["sh", "-c", "echo changed > /seed/sub/file"])
    with stack.up() as running:  # not empty any more: kept, not seeded again
        assert running["user"].exec(["cat", "/seed/sub/file"]).output == "changed\n"
    down(stack, volumes=True)


def test_up_starts_the_network_early_and_leaves_no_lease_of_its_own(home: Path) -> None:
    """``up`` starts the network daemons itself, under a lease, while the supervisor
    imports; once the stack is up the lease is gone (the containers keep the holder up),
    so ``down`` stops the holder as before instead of leaving it to the caller's process."""
    from envkit.network import state as network_state

    stack = Stack("early-net", services=[Service("a", image=BUSYBOX, command=["sleep", "60"])])
    leases = network_state.root() / "leases"
    with up(stack):
        mine = [p.name for p in leases.glob(f"{os.getpid()}*.json")] if leases.is_dir() else []
        assert mine == []
        assert network_state.load_daemons() is not None
    assert network_state.load_daemons() is None  # nothing needs the holder any more
