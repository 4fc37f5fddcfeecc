"""Stacks through the plugin interfaces: a tmpfs volume backend mounted in a service,
volume backends and options checked before anything starts, and plugins told when
services start and stop."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit import Service, Stack, Volume
from envkit.builtin.volumes import TmpfsVolumes
from envkit.errors import PluginError, SpecError
from envkit.plugins import hookimpl
from envkit.plugins.manager import PluginManager, reset_manager
from envkit.stack import down, up_foreground
from tests.integration import test_stack
from tests.integration.test_stack import BUSYBOX, cli, leftovers, wait_for

# test_stack's fixtures: a home with the test busybox loaded, checked for leftovers.
loaded_home = test_stack.loaded_home
home = test_stack.home

pytestmark = pytest.mark.rootless


def mount_line(mounts: str, target: str) -> list[str]:
    """The fields of ``/proc/mounts``' line for ``target``."""
    found = [line.split() for line in mounts.splitlines() if line.split()[1:2] == [target]]
    assert len(found) == 1, mounts
    return found[0]


def test_tmpfs_volume_is_sized_writable_and_gone_at_down(home: Path) -> None:
    scratch = Volume("scratch", backend="tmpfs", options={"size": "16m"})
    keep = Volume("keep")
    worker = Service(
        "worker",
        init=True,
        image=BUSYBOX,
        command=["sleep", "600"],
        volumes={scratch: "/scratch", keep: "/keep"},
    )
    stack = Stack("tmpvol", services=[worker])
    with stack.up() as running:
        assert "tmpvol_scratch" in TmpfsVolumes().list()
        fields = mount_line(running["worker"].exec(["cat", "/proc/mounts"]).output, "/scratch")
        assert fields[2] == "tmpfs"
        assert "size=16384k" in fields[3].split(","), fields
        wrote = running["worker"].exec(["sh", "-c", "echo hi > /scratch/f && cat /scratch/f"])
        assert (wrote.exit_code, wrote.output) == (0, "hi\n")
        running["worker"].exec(["sh", "-c", "echo kept > /keep/f"])
    assert "tmpvol_scratch" not in TmpfsVolumes().list()  # removed by down, no -v
    volumes = cli(home, ["volume", "ls", "-q"]).stdout.split()
    assert "tmpvol_keep" in volumes and "tmpvol_scratch" not in volumes
    with stack.up() as running:  # a fresh tmpfs; the local volume kept its data
        assert running["worker"].exec(["ls", "/scratch"]).output == ""
        assert running["worker"].exec(["cat", "/keep/f"]).output == "kept\n"
    down(stack, volumes=True)
    assert leftovers(home) == []


def test_tmpfs_volume_is_removed_by_down_after_kill_9(home: Path, tmp_path: Path) -> None:
    (tmp_path / "stack.py").write_text(
        "from envkit import Service, Stack, Volume\n"
        "v = Volume('scratch', backend='tmpfs')\n"
        "s = Service('sleeper', init=True, image='busybox:1', command=['sleep', '600'],\n"
        "            volumes={v: '/scratch'})\n"
        "stack = Stack('tmpkill', services=[s])\n"
    )
    assert cli(home, ["up", "-d"], cwd=tmp_path).returncode == 0
    from envkit.stack import state as ss

    record = ss.require("tmpkill")
    assert "tmpkill_scratch" in TmpfsVolumes().list()
    os.kill(record.supervisor, signal.SIGKILL)
    wait_for(lambda: not record.supervised)
    assert cli(home, ["down", "-p", "tmpkill"]).returncode == 0
    assert "tmpkill_scratch" not in TmpfsVolumes().list()
    assert leftovers(home) == []


def test_bad_volume_backend_or_option_fails_before_anything_starts(
    home: Path, tmp_path: Path
) -> None:
    web = Service("web", init=True, image=BUSYBOX, command=["sleep", "600"])
    nosuch = Volume("data", backend="nosuch")
    stack = Stack(
        "badvol", services=[web, Service("db", init=True, image=BUSYBOX, volumes={nosuch: "/d"})]
    )
    with pytest.raises(PluginError, match=r"Volume\('data'\): no volume backend named 'nosuch'"):
        stack.up()
    huge = Volume("scratch", backend="tmpfs", options={"size": "huge"})
    stack = Stack(
        "badvol", services=[web, Service("db", init=True, image=BUSYBOX, volumes={huge: "/s"})]
    )
    with pytest.raises(SpecError, match=r"Volume\('scratch'\)"):
        stack.up()
    assert leftovers(home) == []
    assert TmpfsVolumes().list() == []
    (tmp_path / "stack.py").write_text(
        "from envkit import Service, Stack, Volume\n"
        "v = Volume('data', backend='nosuch')\n"
        "stack = Stack('badvol', services=[Service('db', image='busybox:1', volumes={v: '/d'})])\n"
    )
    done = cli(home, ["up", "-d"], cwd=tmp_path)
    assert done.returncode == 2
    assert "Volume('data')" in done.stderr and "nosuch" in done.stderr
    assert "Traceback" not in done.stderr
    assert leftovers(home) == []


class Listener:
    """Records the lifecycle notifications it hears."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, int | None]] = []
        self.lock = threading.Lock()

    @hookimpl
    def envkit_service_started(self, stack: str, service: str) -> None:
        with self.lock:
            self.events.append(("started", stack, service, None))

    @hookimpl
    def envkit_service_stopped(self, stack: str, service: str, exit_code: int | None) -> None:
        with self.lock:
            self.events.append(("stopped", stack, service, exit_code))

    def seen(self) -> list[tuple[str, str, str, int | None]]:
        with self.lock:
            return list(self.events)


@pytest.fixture
def listener() -> Iterator[Listener]:
    heard = Listener()
    manager = PluginManager(load_entry_points=False)
    manager.register(heard, name="listener")
    reset_manager(manager)
    try:
        yield heard
    finally:
        reset_manager(None)


def test_plugins_hear_services_start_and_stop(home: Path, listener: Listener) -> None:
    sleeper = Service("sleeper", init=True, image=BUSYBOX, command=["sleep", "600"])
    quitter = Service(
        "quitter", init=True, image=BUSYBOX, command=["sh", "-c", "exit 3"], restart="no"
    )
    stack = Stack("heard", services=[sleeper, quitter])
    while_up: list[tuple[str, str, str, int | None]] = []

    def started() -> None:
        wait_for(lambda: ("stopped", "heard", "quitter", 3) in listener.seen())
        while_up.extend(listener.seen())
        os.kill(os.getpid(), signal.SIGTERM)  # up_foreground's handler: stop gracefully

    # The foreground path keeps the supervisor, and so the listener, in this process.
    up_foreground(stack, on_started=started)
    assert sorted(e for e in while_up if e[0] == "started") == [
        ("started", "heard", "quitter", None),
        ("started", "heard", "sleeper", None),
    ]
    assert ("stopped", "heard", "sleeper", None) not in while_up
    stopped = [e for e in listener.seen() if e[0] == "stopped"]
    assert [e[2] for e in stopped] == ["quitter", "sleeper"]
    assert stopped[1][3] is not None and stopped[1][3] != 0  # killed by SIGTERM
    assert leftovers(home) == []
