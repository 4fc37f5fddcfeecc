"""How a stack's services are started: side by side once their dependencies are ready,
each by a thread that holds its container; a start failing beside others in flight
leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit import Service, Stack
from envkit.errors import EnvkitError
from envkit.plugins import hookimpl
from envkit.plugins.manager import PluginManager, reset_manager
from envkit.stack import state as ss
from envkit.stack import up_foreground
from tests.integration import test_stack
from tests.integration.test_stack import BUSYBOX, cli, leftovers

# test_stack's fixtures: a home with the test busybox loaded, checked for leftovers.
loaded_home = test_stack.loaded_home
home = test_stack.home

pytestmark = pytest.mark.rootless


class Rendezvous:
    """A plugin whose start notification for ``services`` returns only once every one of
    them was announced: it passes only if their starts do not wait for each other."""

    def __init__(self, services: set[str]) -> None:
        self.services = services
        self.barrier = threading.Barrier(len(services), timeout=30)
        self.met: list[str] = []
        self.lock = threading.Lock()

    @hookimpl
    def envkit_service_started(self, stack: str, service: str) -> None:
        if service not in self.services:
            return
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return
        with self.lock:
            self.met.append(service)


@pytest.fixture
def rendezvous() -> Iterator[Rendezvous]:
    plugin = Rendezvous({"left", "right"})
    manager = PluginManager(load_entry_points=False)
    manager.register(plugin, name="rendezvous")
    reset_manager(manager)
    try:
        yield plugin
    finally:
        reset_manager(None)


def test_siblings_start_without_waiting_for_each_other(home: Path, rendezvous: Rendezvous) -> None:
    base = Service("base", init=True, image=BUSYBOX, command=["sleep", "600"])
    left = Service("left", init=True, image=BUSYBOX, command=["sleep", "600"], depends_on=[base])
    right = Service("right", init=True, image=BUSYBOX, command=["sleep", "600"], depends_on=[base])
    states: list[dict[str, str]] = []

    def started() -> None:
        from envkit.stack import state as ss

        states.append({n: s.status for n, s in ss.require("sides").services.items()})
        os.kill(os.getpid(), signal.SIGTERM)  # up_foreground's handler: stop gracefully

    # In this process (foreground), so that the supervisor uses the plugin above.
    up_foreground(Stack("sides", services=[base, left, right]), on_started=started)
    assert sorted(rendezvous.met) == ["left", "right"]
    assert states == [{"base": "running", "left": "running", "right": "running"}]
    assert leftovers(home) == []


def test_a_start_failing_beside_others_leaves_nothing(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        base = Service("base", init=True, image=BUSYBOX, command=["sleep", "600"])
        fine = Service(
            "fine", init=True, image=BUSYBOX, command=["sleep", "600"], depends_on=[base]
        )
        clash = Service(
            "clash",
            init=True,
            image=BUSYBOX,
            command=["sleep", "600"],
            depends_on=[base],
            ports={port: 8080},
        )
        with pytest.raises(EnvkitError, match="in use"):
            Stack("halfway", services=[base, fine, clash]).up()
    assert leftovers(home) == []


def test_many_siblings_start_and_stop_again_and_again(home: Path, tmp_path: Path) -> None:
    # Side-by-side starts once left a container's monitor holding the pipe of a sibling's
    # start (a fork in one thread inherits the fds another thread just made), and that
    # start hung: this used to hang within a few rounds.
    (tmp_path / "stack.py").write_text(
        "from envkit import Service, Stack\n"
        "base = Service('base', init=True, image='busybox:1', command=['sleep', '600'])\n"
        "kids = [Service(f'kid{i}', init=True, image='busybox:1', command=['sleep', '600'],\n"
        "                depends_on=[base]) for i in range(4)]\n"
        "stack = Stack('crowd', services=[base, *kids])\n"
    )
    for _ in range(4):
        up = cli(home, ["up", "-d"], cwd=tmp_path, timeout=90)
        assert up.returncode == 0, up.stderr
        record = ss.require("crowd")
        assert {n: s.status for n, s in record.services.items()} == {
            n: "running" for n in ["base", "kid0", "kid1", "kid2", "kid3"]
        }
        gone = cli(home, ["down"], cwd=tmp_path, timeout=90)
        assert gone.returncode == 0, gone.stderr
    assert leftovers(home) == []
