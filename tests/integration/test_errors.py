"""Bad input from the host, through the CLI as a user meets it: a published port in use,
an unwritable or read-only ``ENVKIT_HOME``, a full one. Each is one message naming the
port or path with its fix (``envkit: error: ...`` and a ``hint:`` line), exit 2, no
traceback, and nothing half-written: no container, no stack, ``fsck`` clean.

As root and rootless (scripts/test-rootless.sh). The read-only and full homes are made in
a private mount namespace (``unshare -m``, or ``unshare -rm`` for a user), so they need
``unshare`` from util-linux and are skipped without it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless

IMAGE = "busybox:1"
ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("errors"), [images.busybox_layer()], IMAGE)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    yield loaded_home
    assert leftovers(loaded_home) == []


def leftovers(home: Path) -> list[str]:
    """Containers, stacks, networks and port logs of ``home`` still present."""
    from envkit import network
    from envkit.runtime import state
    from envkit.stack import state as ss

    found = [f"container {s.name}" for s in state.all_states()]
    found += [f"stack {s.name}" for s in ss.all_stacks()]
    # The default network "envkit" is made once and stays, like docker's bridge.
    found += [f"network {n.name}" for n in network.list_networks() if n.name != "envkit"]
    found += [f"file {p}" for p in (home / "network" / "logs").glob("ports-*")]
    return found


def one_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert ``done`` failed with exit 2 and one error (its message and hint line)."""
    err = done.stderr
    assert done.returncode == 2, (done.returncode, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("envkit: error: "), err
    assert lines[1].startswith("  hint: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def stack_file(tmp_path: Path, port: int, name: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        "from envkit import Service, Stack\n"
        f"web = Service('web', image={IMAGE!r}, command=['sleep', '600'], ports={{{port}: 80}})\n"
        f"stack = Stack({name!r}, services=[web])\n"
    )
    return path


# -- a published port in use ----------------------------------------------------------


def test_a_published_port_in_use_exits_2_naming_it(home: Path, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        where = f"127.0.0.1:{port}"
        for argv in (
            ["run", "--rm", "-p", f"{port}:80", IMAGE, "true"],
            ["run", "-d", "--name", "busy", "-p", f"{port}:80", IMAGE, "sleep", "60"],
            ["up", str(stack_file(tmp_path, port, "fg"))],
            ["up", "-d", str(stack_file(tmp_path, port, "bg"))],
        ):
            err = one_error(homes.cli(home, argv), where, "already in use", "ss -ltnp")
            assert "0:80" in err, err  # the fix: another port, or 0 for a free one
            assert leftovers(home) == [], argv


# -- a user the id maps lack ------------------------------------------------------------


def test_a_user_the_id_maps_lack_exits_2_with_the_fix(home: Path) -> None:
    """``--user`` past the subordinate range is input the user can fix: exit 2, as any
    bad input (it was 1, the runtime's code)."""
    done = homes.cli(home, ["run", "--rm", "--user", "99999999999", IMAGE, "true"])
    one_error(done, "uid 99999999999 has no host uid", "subordinate range")
    assert leftovers(home) == []


# -- an unwritable home -----------------------------------------------------------------

# Commands that write the home; `ps` only reads it, and may succeed.
WRITERS = (["down", "-p", "nothere"], ["run", "--rm", IMAGE, "true"], ["load", "-i"])


def check_unwritable(home: Path, archive: Path, run: bool, *needles: str) -> None:
    for argv in WRITERS:
        if argv[0] == "run" and not run:
            continue
        full = [*argv, str(archive)] if argv[0] == "load" else argv
        one_error(homes.cli(home, full), f"cannot write to ENVKIT_HOME ({home})", *needles)
    done = homes.cli(home, ["ps"])
    assert "Traceback" not in done.stderr
    if done.returncode != 0:
        one_error(done, f"cannot write to ENVKIT_HOME ({home})")


@pytest.mark.skipif(ROOT, reason="root ignores file modes (the read-only mount test covers root)")
def test_an_unwritable_home_is_one_line_with_the_fix(tmp_path: Path) -> None:
    homes.require_containers()
    archive = tmp_path / "bb.tar"
    images.build_archive(archive, [images.busybox_layer()], ref=IMAGE)
    home = tmp_path / "home"
    assert homes.cli(home, ["load", "-i", str(archive)]).returncode == 0
    (home / "stacks").mkdir(mode=0o700, exist_ok=True)
    for path in (home, *home.iterdir()):
        path.chmod(0o500)
    try:
        check_unwritable(home, archive, True, "Permission denied", "chmod 700")
    finally:
        for path in (home, *home.iterdir()):
            path.chmod(0o700)


def in_mount_namespace(script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` in a private mount namespace (as a user: mapped to root of a new
    user namespace); skips when ``unshare`` cannot make one here."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) missing")
    flags = "-m" if ROOT else "-rm"
    probe = subprocess.run([unshare, flags, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare {flags} failed here: {probe.stderr.decode().strip()}")
    env = {k: v for k, v in os.environ.items() if k != "ENVKIT_DEBUG"}
    return subprocess.run(
        [unshare, flags, "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def envkit_cmd(home: Path, *argv: str) -> str:
    """A shell line running ``envkit ARGV`` with ``home``; prints its exit code after."""
    words = [sys.executable, "-m", "envkit", *argv]
    line = f"ENVKIT_HOME={shlex.quote(str(home))} {shlex.join(words)}"
    return f"{line}; echo rc=$? >&2"


def split_runs(stderr: str) -> list[tuple[int, str]]:
    """The (exit code, stderr) of each :func:`envkit_cmd` of a script, in order."""
    runs: list[tuple[int, str]] = []
    lines: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("rc="):
            runs.append((int(line[3:]), "\n".join(lines)))
            lines = []
        else:
            lines.append(line)
    return runs


def test_a_read_only_home_is_one_line_with_the_fix(tmp_path: Path) -> None:
    homes.require_containers()
    archive = tmp_path / "bb.tar"
    images.build_archive(archive, [images.busybox_layer()], ref=IMAGE)
    home = tmp_path / "home"
    assert homes.cli(home, ["load", "-i", str(archive)]).returncode == 0
    commands = [
        ["down", "-p", "nothere"],
        ["load", "-i", str(archive)],
        *([["run", "--rm", IMAGE, "true"]] if ROOT else []),  # no containers in `unshare -r`
    ]
    q = shlex.quote(str(home))
    script = "; ".join(
        [
            f"mount --bind {q} {q} && mount -o remount,ro,bind {q} || exit 99",
            *(envkit_cmd(home, *argv) for argv in commands),
        ]
    )
    done = in_mount_namespace(script)
    assert done.returncode != 99, done.stderr
    runs = split_runs(done.stderr)
    assert len(runs) == len(commands), done.stderr
    for argv, (code, err) in zip(commands, runs, strict=True):
        result = subprocess.CompletedProcess(argv, code, "", err + "\n")
        one_error(result, f"cannot write to ENVKIT_HOME ({home})", "Read-only file system")
    # Nothing was changed: the home still works once writable.
    assert homes.cli(home, ["fsck"]).returncode == 0


# -- a full home ----------------------------------------------------------------------


def test_a_full_home_names_the_home_and_leaves_the_store_consistent(tmp_path: Path) -> None:
    homes.require_containers()
    archive = tmp_path / "big.oci.tar"
    layers = [images.busybox_layer(), images.random_layer(1, 3 << 20)]
    images.build_archive(archive, layers, ref="big:1")
    mnt = tmp_path / "small"
    mnt.mkdir()
    home = mnt / "home"
    q = shlex.quote(str(mnt))
    script = "; ".join(
        [
            f"mount -t tmpfs -o size=1m tmpfs {q} || exit 99",
            envkit_cmd(home, "load", "-i", str(archive)),
            envkit_cmd(home, "fsck"),
            envkit_cmd(home, "images", "-q"),
        ]
    )
    done = in_mount_namespace(script)
    assert done.returncode != 99, done.stderr
    (load_code, load_err), (fsck_code, fsck_err), (images_code, _) = split_runs(done.stderr)
    result = subprocess.CompletedProcess(["load"], load_code, "", load_err + "\n")
    err = one_error(
        result, f"cannot write to ENVKIT_HOME ({home})", "No space left on device", "envkit prune"
    )
    assert "big.oci.tar" not in err  # the archive is fine: the store is full
    assert fsck_code == 0, fsck_err
    assert images_code == 0 and "big" not in done.stdout  # nothing was tagged
