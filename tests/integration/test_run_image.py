"""``envkit run`` and ``envkit.run()``: busybox images from the store, as root and rootless."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import envkit
from envkit import Image
from envkit.errors import ImageNotFoundError, StartError
from envkit.store import snapshots
from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"
WHITEOUT = "whiteout:1"
OWNED = "owned:1"
REPEATED = "repeated:1"


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ENVKIT_HOME holding busybox:1 and whiteout:1 (busybox, then a layer deleting
    /etc/motd and making /data opaque), loaded through ``envkit load``."""
    work = tmp_path_factory.mktemp("run-image")
    base = images.busybox_layer()
    extra = images.layer_tar(
        {"etc/motd": b"hello\n", "data/old.txt": b"old\n", "data/keep.txt": b"keep\n"}
    )
    hide = images.layer_tar({"etc/.wh.motd": b"", "data/.wh..wh..opq": b"", "data/new": b"n"})
    app = images.layer_tar(
        {"home/app/data": b"secret\n"},
        owners={"home/app": (1000, 1000, 0o700), "home/app/data": (1000, 1000, 0o600)},
    )
    homes.loaded_home(work, [base], BUSYBOX)
    homes.loaded_home(work, [base, app], OWNED)
    homes.loaded_home(work, [base, extra, base], REPEATED)  # busybox twice: no new snapshot
    return homes.loaded_home(work, [base, extra, hide], WHITEOUT)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    before = _mounts()
    yield loaded_home
    from envkit.runtime import state

    left = state.all_states()
    assert all(s.status == state.EXITED for s in left)  # nothing still runs
    if left:  # containers run without --rm stay until `envkit rm`, as docker's do
        done = _cli(loaded_home, ["rm", *(s.name for s in left)])
        assert done.returncode == 0, done.stderr
    containers = loaded_home / "containers"
    # upper/work dirs removed; .exits keeps --rm containers' exit codes for a minute
    assert {p.name for p in containers.iterdir()} <= {".names", ".exits"}
    assert list((containers / ".names").iterdir()) == []
    assert _mounts() == before  # nothing leaked into the host's mount table


def _mounts() -> list[str]:
    """Mount points under this test's ENVKIT_HOME or a runtime state dir (envkit-ctr-*)
    in this mount namespace: the rest of the table belongs to whatever else runs here."""
    home = os.environ.get("ENVKIT_HOME", "/nonexistent")
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted(p for p in points if p.startswith(home) or "/envkit-ctr-" in p)


_cli = homes.cli


def _python(home: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter (nothing imported but what it imports)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "ENVKIT_HOME": str(home)},
        check=False,
    )


def _api(tmp_path: Path, image: str | Image, cmd: list[str] | None, **kw: Any) -> tuple[int, str]:
    """Run through ``envkit.run``; exit code and stdout+stderr."""
    out = tmp_path / "out.txt"
    with open(os.devnull, "rb") as stdin, open(out, "wb") as f:
        stdio = (stdin.fileno(), f.fileno(), f.fileno())
        code = envkit.run(image, cmd, stdio=stdio, **kw).wait()
    return code, out.read_text()


def test_cli_runs_as_root_with_exit_code_and_stdio(home: Path) -> None:
    done = _cli(home, ["run", "--rm", BUSYBOX, "sh", "-c", "id -u; echo err >&2; exit 3"])
    assert done.returncode == 3
    assert done.stdout == "0\n"
    assert done.stderr == "err\n"


def test_cli_unknown_image_exits_2_with_one_message(home: Path) -> None:
    done = _cli(home, ["run", "--pull=never", "nope:1", "true"])
    assert done.returncode == 2
    assert "no image 'nope:1'" in done.stderr and "envkit pull nope:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_refuses_resource_limits(home: Path) -> None:
    done = _cli(home, ["run", "--memory", "64m", BUSYBOX, "true"])
    assert done.returncode == 2
    assert "--memory" in done.stderr
    assert "cgroup" in done.stderr


def test_cli_options(home: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=f\nBOTH=file\n")
    script = "echo $FROM_FILE $BOTH $PATH; pwd; hostname; cat /etc/hostname 2>/dev/null; true"
    done = _cli(
        home,
        [
            "run",
            "--env-file",
            str(env_file),
            "-e",
            "BOTH=cli",
            "-w",
            "/made/here",
            "--hostname",
            "web-1",
            "--entrypoint",
            "/bin/sh",
            BUSYBOX,
            "-c",
            script,
        ],
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "f cli /bin"  # PATH=/bin from the image config
    assert lines[1] == "/made/here"  # -w created when missing
    assert lines[2] == "web-1"


def test_default_hostname_is_short_id(home: Path, tmp_path: Path) -> None:
    code, out = _api(tmp_path, BUSYBOX, ["hostname"])
    assert code == 0
    assert len(out.strip()) == 12
    assert all(c in "0123456789abcdef" for c in out.strip())


def test_image_cmd_is_the_default(home: Path, tmp_path: Path) -> None:
    # busybox:1's Cmd is /bin/sh; with stdin at EOF it exits 0 at once.
    code, out = _api(tmp_path, BUSYBOX, [])
    assert (code, out) == (0, "")


def test_user_from_passwd_and_numeric(home: Path, tmp_path: Path) -> None:
    from envkit.host import idmap

    if idmap.plan().single_id:
        pytest.skip("single-id map: only root exists in the container")
    code, out = _api(tmp_path, BUSYBOX, ["sh", "-c", "id -u; id -g; echo $HOME"], user="nobody")
    assert (code, out.split()) == (0, ["65534", "65534", "/"])
    code, out = _api(tmp_path, BUSYBOX, ["id"], user="1234:5678")
    assert code == 0
    assert out.startswith("uid=1234 gid=5678")


def test_bind_mount_visible_and_written_to_host(home: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # as root, container root is a subordinate id, not host root
    (shared / "in.txt").write_text("from host\n")
    code, out = _api(
        tmp_path,
        BUSYBOX,
        ["sh", "-c", "cat /mnt/in.txt; echo from container > /mnt/out.txt"],
        volumes=[f"{shared}:/mnt"],
    )
    assert (code, out) == (0, "from host\n")
    assert (shared / "out.txt").read_text() == "from container\n"
    code, out = _api(
        tmp_path, BUSYBOX, ["sh", "-c", "echo x > /ro/y"], volumes=[f"{shared}:/ro:ro"]
    )
    assert (code, out) == (1, "sh: can't create /ro/y: Read-only file system\n")
    assert not (shared / "y").exists()


def test_each_container_gets_a_fresh_upper(home: Path, tmp_path: Path) -> None:
    code, _ = _api(tmp_path, BUSYBOX, ["sh", "-c", "echo 1 > /root/mark; rm /bin/ls"])
    assert code == 0
    code, out = _api(tmp_path, BUSYBOX, ["sh", "-c", "cat /root/mark; test -e /bin/ls"])
    assert code == 0
    assert "No such file" in out


def test_read_only_root_and_tmpfs(home: Path, tmp_path: Path) -> None:
    script = "touch /root/x || echo refused; touch /scratch/y && echo tmpfs-ok"
    code, out = _api(tmp_path, BUSYBOX, ["sh", "-c", script], read_only=True, tmpfs=["/scratch"])
    assert code == 0
    assert out.splitlines()[-2:] == ["refused", "tmpfs-ok"]


def test_whiteouts_hide_lower_files(home: Path, tmp_path: Path) -> None:
    code, out = _api(tmp_path, WHITEOUT, ["sh", "-c", "test -e /etc/motd && echo motd; ls /data"])
    assert code == 0
    assert out.split() == ["new"]  # motd deleted, /data opaque: only the top layer's file


def test_image_files_keep_their_owners_for_the_container_user(home: Path, tmp_path: Path) -> None:
    """A directory the image gives to uid 1000 (mode 0700) is that user's in the container,
    as docker runs it: root or rootless with subordinate ids (a single-id map has no
    uid 1000 to run as)."""
    from envkit.host import idmap

    if idmap.plan().single_id:
        pytest.skip("a single-id map has no other user to own files")
    script = "stat -c '%u %g %a' /home/app /home/app/data; cat /home/app/data; touch /home/app/new"
    code, out = _api(tmp_path, OWNED, ["sh", "-c", script], user="1000:1000")
    assert code == 0, out
    assert out.splitlines() == ["1000 1000 700", "1000 1000 600", "secret"]


def test_snapshots_shared_and_flattened_when_whiteouts(home: Path, tmp_path: Path) -> None:
    _api(tmp_path, BUSYBOX, ["true"])
    _api(tmp_path, WHITEOUT, ["true"])  # not left to an earlier test: this one runs alone too
    names = {p.name for p in (home / "snapshots").iterdir() if p.is_dir()}
    assert any(n.startswith("chain-") for n in names)  # the whiteout image, materialised
    assert sum(len(n) == 64 for n in names) == 4  # one per distinct layer, busybox shared


def test_chain_id_follows_the_oci_spec() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    import hashlib

    assert snapshots.chain_id([a]) == a
    assert snapshots.chain_id([a, b]) == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def test_exit_codes_and_signals(home: Path, tmp_path: Path) -> None:
    import signal

    assert _api(tmp_path, BUSYBOX, ["sh", "-c", "exit 42"])[0] == 42
    with pytest.raises(StartError) as info:
        envkit.run(BUSYBOX, ["no-such-command"])
    assert info.value.exit_code == 127
    done = _cli(home, ["run", BUSYBOX, "no-such-command"])
    assert done.returncode == 127
    assert "no-such-command" in done.stderr
    with envkit.run(BUSYBOX, ["sleep", "30"], stdio=(0, 1, 2)) as c:
        assert c.pid > 0
        c.kill(signal.SIGKILL)
        assert c.wait() == 128 + signal.SIGKILL


def test_api_errors(home: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        envkit.run("nope:1", ["true"], pull="never")


def test_api_builds_an_image_with_steps_before_running_it(home: Path, tmp_path: Path) -> None:
    image = envkit.Image.from_(BUSYBOX).run("echo built > /built").cmd(["cat", "/built"])
    code, out = _api(tmp_path, image, None)
    assert (code, out) == (0, "built\n")


def test_api_accepts_image_from_ref(home: Path, tmp_path: Path) -> None:
    code, out = _api(tmp_path, BUSYBOX, ["echo", "ok"])
    assert (code, out) == (0, "ok\n")
    with envkit.run(envkit.Image.from_("busybox:1"), ["true"], stdio=(0, 1, 2)) as c:
        assert c.wait() == 0


def test_files_of_other_container_users_are_removed(home: Path, tmp_path: Path) -> None:
    from envkit.host import idmap

    if idmap.plan().single_id:
        pytest.skip("single-id map: only root exists in the container")
    script = "mkdir /tmp/d && touch /tmp/d/f && chmod 500 /tmp/d && echo made"
    code, out = _api(tmp_path, BUSYBOX, ["sh", "-c", script], user="nobody")
    assert (code, out) == (0, "made\n")
    # the `home` fixture checks $ENVKIT_HOME/containers is empty afterwards


def test_a_moved_tag_is_seen_by_the_next_run(home: Path, tmp_path: Path) -> None:
    """``run`` remembers what a name resolved to; a tag moved since must not run the old
    image (the remembered entry is tied to index.json)."""
    alias = "moving:1"
    assert _cli(home, ["tag", BUSYBOX, alias]).returncode == 0
    assert _api(tmp_path, alias, ["cat", "/etc/motd"])[0] != 0  # busybox has no motd
    assert _cli(home, ["tag", WHITEOUT, alias]).returncode == 0
    try:
        # whiteout:1 hides /etc/motd too, but has /data/new: only it can print "n".
        assert _api(tmp_path, alias, ["cat", "/data/new"]) == (0, "n")
    finally:
        assert _cli(home, ["rmi", alias]).returncode == 0
    done = _cli(home, ["run", "--rm", "--pull=never", alias, "true"])
    assert done.returncode == 2 and "no image 'moving:1'" in done.stderr


def test_a_removed_snapshot_is_extracted_again(home: Path, tmp_path: Path) -> None:
    import shutil

    assert _api(tmp_path, BUSYBOX, ["true"])[0] == 0  # resolved and remembered
    layers = [p for p in snapshots.snapshots_dir().iterdir() if p.suffix == ".json"]
    for meta in layers:
        meta.unlink()
        shutil.rmtree(meta.with_suffix(""), ignore_errors=True)
    assert _api(tmp_path, BUSYBOX, ["echo", "back"]) == (0, "back\n")


def test_api_in_a_bare_interpreter(home: Path) -> None:
    """``envkit.run`` from a script that imported nothing else: the container's side must
    not depend on modules that happened to be loaded before (after pivot_root nothing of
    the host can be imported; os.execvpe, for one, imports warnings when called)."""
    script = (
        "import sys, envkit\n"
        "code = envkit.run('busybox:1', ['sh', '-c', 'echo found; exit 7'],"
        " stdio=(0, 1, 2), remove=True).wait()\n"
        "sys.exit(code)\n"
    )
    done = _python(home, script)
    assert (done.returncode, done.stdout) == (7, "found\n"), done.stderr


def test_starts_after_the_first_share_one_user_namespace(home: Path) -> None:
    """A process's second and later containers join one kept user namespace (no
    newuidmap/newgidmap rootless, no maps to write as root); each still has its own pid
    and mount namespaces, and the same id maps."""
    from envkit.host import idmap

    maps = idmap.plan()
    if not (maps.use_helpers or os.geteuid() == 0):
        pytest.skip("a single-id map is written by the caller itself: not shared")
    # All three alive at once: a freed namespace's inode number may be reused.
    script = (
        "import envkit\n"
        "show = 'for n in user pid mnt; do readlink /proc/self/ns/$n; done;"
        " echo $(cat /proc/self/uid_map); touch /tmp/shown; sleep 30'\n"
        "running = []\n"
        "for n in range(3):\n"
        "    running.append(envkit.run('busybox:1', ['sh', '-c', show]))\n"
        "    while running[-1].exec(['test', '-e', '/tmp/shown']).exit_code:\n"
        "        pass\n"
        "for c in running:\n"
        "    c.kill(); c.wait(); print(c.logs(), end=''); c.remove()\n"
    )
    done = _python(home, script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    runs = [lines[n * 4 : n * 4 + 4] for n in range(3)]  # user, pid, mnt, the map
    users = [run[0] for run in runs]
    assert users[0].startswith("user:[") and users[1] == users[2] != users[0]
    assert len({run[1] for run in runs}) == 3 and len({run[2] for run in runs}) == 3
    assert runs[0][3] == runs[1][3] == runs[2][3]
    assert runs[0][3].split()[:2] == ["0", str(maps.to_host_uid(0))]


def test_an_image_repeating_a_layer_runs(home: Path, tmp_path: Path) -> None:
    """Overlayfs refuses a lower dir given twice (ELOOP); the topmost copy is kept."""
    code, out = _api(tmp_path, REPEATED, ["sh", "-c", "cat /etc/motd; ls /data"])
    assert (code, out) == (0, "hello\nkeep.txt\nold.txt\n")
    done = _cli(home, ["run", "--rm", REPEATED, "sh", "-c", "echo written > /x; cat /x"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "written\n", "")
    done = _cli(home, ["run", "--rm", "--read-only", REPEATED, "true"])
    assert (done.returncode, done.stderr) == (0, "")


def test_build_steps_after_two_equal_layers_run(home: Path, tmp_path: Path) -> None:
    """``.run("true").run("true")`` makes two layers with one diff_id; the later steps
    and the run of the result stack them once."""
    image = (
        envkit.Image.from_(BUSYBOX)
        .run("true")
        .run("true")
        .run("echo built > /built")
        .cmd(["cat", "/built"])
    )
    code, out = _api(tmp_path, image, None)
    assert (code, out) == (0, "built\n")


def test_a_sparse_layer_stays_sparse_in_the_snapshot(tmp_path: Path) -> None:
    """A 10 GiB GNU sparse entry in a 10 KB layer: 10 GiB apparent, next to nothing on disk."""
    from tests.unit.hostile_tars import TarBuilder

    size = 10 << 30
    sparse = TarBuilder().sparse("big", size, [(0, b"head"), (size - 4, b"tail")]).bytes()
    home = homes.loaded_home(tmp_path, [images.busybox_layer(), sparse], "sparse:1")
    show = "stat -c %s /big; head -c 4 /big; tail -c 4 /big; echo; du -k /big"
    done = _cli(home, ["run", "--rm", "sparse:1", "sh", "-c", show])
    assert done.returncode == 0, done.stderr
    apparent, ends, usage = done.stdout.splitlines()
    assert (int(apparent), ends) == (size, "headtail")
    assert int(usage.split()[0]) < 1024  # KiB allocated
    found = list((home / "snapshots").glob("*/big"))
    assert len(found) == 1 and found[0].stat().st_blocks * 512 < 1 << 20


def test_a_layer_over_the_size_cap_is_refused_in_one_line(tmp_path: Path) -> None:
    from tests.unit.hostile_tars import TarBuilder

    size = 10 << 30
    sparse = TarBuilder().sparse("big", size, [(0, b"head"), (size - 4, b"tail")]).bytes()
    home = homes.loaded_home(tmp_path, [images.busybox_layer(), sparse], "sparse:1")
    done = _cli(home, ["run", "--rm", "sparse:1", "true"], env={"ENVKIT_MAX_LAYER_SIZE": "1g"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("envkit: error: layer sha256:"), done.stderr
    assert "expands to more than 1 GiB" in done.stderr
    assert "ENVKIT_MAX_LAYER_SIZE" in done.stderr
    assert not list((home / "snapshots").glob("*/big"))  # nothing half-extracted left


def test_a_damaged_layer_blob_is_named_in_one_line(tmp_path: Path) -> None:
    home = homes.loaded_home(tmp_path)
    blobs = sorted((home / "store" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    layer = blobs[-1]  # busybox's layer: the largest blob
    data = layer.read_bytes()
    os.chmod(layer, 0o644)
    layer.write_bytes(data[: len(data) // 2])
    done = _cli(home, ["run", "--rm", BUSYBOX, "true"])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"layer sha256:{layer.name}: the layer ends early (truncated blob)" in done.stderr
    assert "hint:" in done.stderr
