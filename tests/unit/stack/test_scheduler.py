"""The stack scheduler with fake services (no containers, no namespaces, a fake clock):
start order, parallel starts, the ``depends_on`` conditions (compose's
``service_started``, ``service_healthy``, ``service_completed_successfully``), a
dependency that fails, a start that fails, the deadline and an interrupted start."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from envkit.errors import DependencyError, RuntimeError_
from envkit.records import replace
from envkit.stack.scheduler import Launch, Scheduler, Snapshot, condition

# -- condition(): one service against one wanted condition ---------------------------------

RUNNING = Snapshot("running", has_container=True)
CHECKED = replace(RUNNING, checked=True, health="starting")


@pytest.mark.parametrize(
    ("snapshot", "wanted", "expected"),
    [
        (None, "started", "it is not part of the stack"),
        (Snapshot("created", starting=True), "started", ""),
        (Snapshot("created"), "started", "it was not started"),
        (Snapshot("stopped"), "healthy", "it was stopped"),
        (RUNNING, "started", None),
        (RUNNING, "completed", ""),
        (replace(RUNNING, status="exited", exit_code=0), "completed", None),
        (replace(RUNNING, status="exited", exit_code=3), "completed", "it exited with code 3"),
        (replace(RUNNING, status="exited", exit_code=1), "started", "it exited with code 1"),
        # A restart is scheduled: not failed yet, and started again soon.
        (replace(RUNNING, status="exited", exit_code=1, restarting=True), "started", None),
        (RUNNING, "healthy", "it has no health check"),
        (CHECKED, "healthy", ""),
        (replace(CHECKED, health="healthy"), "healthy", None),
        (replace(CHECKED, health="unhealthy"), "healthy", "its health check failed"),
        (replace(CHECKED, health="healthy", container_exited=True), "healthy", ""),
        # ready probes: waiting, passed, failed (the probe's reason)
        (replace(RUNNING, checked=True, ready="waiting"), "healthy", ""),
        (replace(RUNNING, checked=True, ready="ready"), "healthy", None),
        (
            replace(RUNNING, checked=True, ready="failed", ready_output="no tcp 5432 in 2 s"),
            "healthy",
            "no tcp 5432 in 2 s",
        ),
        (replace(CHECKED, health="healthy", ready="waiting"), "healthy", ""),
    ],
)
def test_condition(snapshot: Snapshot | None, wanted: str, expected: str | None) -> None:
    assert condition(snapshot, wanted) == expected


# -- a fake stack ---------------------------------------------------------------------------


@dataclass
class FakeService:
    """A service whose container, once launched, follows a script on the fake clock:
    ``(seconds after its start, field, value)`` changes of its snapshot."""

    deps: Sequence[tuple[str, str]] = ()
    checked: bool = False
    script: list[tuple[float, str, object]] = field(default_factory=list)
    start_error: BaseException | None = None
    #: The launch completes only after this many waits (a slow start).
    slow: int = 0
    snapshot: Snapshot = field(default_factory=lambda: Snapshot("created"))
    started_at: float | None = None
    launch: Launch | None = None


class FakeHost:
    def __init__(self, services: dict[str, FakeService]) -> None:
        self.services = services
        self.now = 0.0
        self.launched: list[tuple[float, str]] = []
        self.reported: list[str] = []
        self.stop_requested = False
        self.waits = 0

    @property
    def stack_name(self) -> str:
        return "fake"

    def dependencies(self, name: str) -> Sequence[tuple[str, str]]:
        return self.services[name].deps

    def snapshot(self, name: str) -> Snapshot | None:
        svc = self.services.get(name)
        return None if svc is None else svc.snapshot

    def launch(self, name: str) -> Launch:
        svc = self.services[name]
        self.launched.append((self.now, name))
        svc.launch = Launch()
        svc.snapshot = replace(svc.snapshot, starting=True)
        if svc.slow == 0:
            self._finish(name)
        return svc.launch

    def _finish(self, name: str) -> None:
        svc = self.services[name]
        assert svc.launch is not None
        if svc.start_error is not None:
            svc.snapshot = replace(svc.snapshot, starting=False)
            svc.launch.finish(svc.start_error)
            return
        svc.started_at = self.now
        svc.snapshot = Snapshot(
            "running",
            has_container=True,
            checked=svc.checked,
            health="starting" if svc.checked else "",
        )
        svc.launch.finish()

    def started(self, name: str) -> None:
        self.reported.append(f"{name}: started")

    def wait_event(self, timeout: float) -> None:
        self.waits += 1
        self.now += timeout
        for name, svc in self.services.items():
            if svc.launch is not None and not svc.launch.done.is_set():
                svc.slow -= 1
                if svc.slow <= 0:
                    self._finish(name)
            if svc.started_at is None:
                continue
            for after, key, value in list(svc.script):
                if self.now >= svc.started_at + after - 1e-9:
                    svc.script.remove((after, key, value))
                    svc.snapshot = replace(svc.snapshot, **{key: value})

    def stopping(self) -> bool:
        return self.stop_requested

    def announced(self, name: str) -> None:
        pass

    def not_ready(self, name: str, wanted: str, problem: str, waiter: str | None) -> Exception:
        who = f"{waiter} depends on {name} being {wanted}" if waiter else f"{name} is not ready"
        return DependencyError(f"{who}, but {problem}")


def _start(
    host: FakeHost, order: Sequence[str], timeout: float = 30, *, warm: bool = True
) -> Scheduler:
    """Start ``order``; ``warm``: as after the stack's first start (so a slow fake start
    does not block the test in the first start's real wait)."""
    scheduler = Scheduler(host, clock=lambda: host.now)
    scheduler.started_any = warm
    scheduler.start(order, order, timeout)
    return scheduler


def _names(host: FakeHost) -> list[str]:
    return [name for _, name in host.launched]


def _healthy_after(seconds: float) -> list[tuple[float, str, object]]:
    return [(seconds, "health", "healthy")]


# -- start order ----------------------------------------------------------------------------


def test_independent_services_start_together_after_the_first() -> None:
    host = FakeHost({n: FakeService() for n in ("a", "b", "c")})
    scheduler = _start(host, ["a", "b", "c"], warm=False)
    assert host.launched == [(0.0, "a"), (0.0, "b"), (0.0, "c")]
    assert host.reported == ["a: started", "b: started", "c: started"]
    assert scheduler.started_any and host.waits == 0


def test_started_dependency_starts_the_dependent_once_its_container_runs() -> None:
    host = FakeHost(
        {
            "db": FakeService(slow=3),
            "web": FakeService(deps=[("db", "started")]),
        }
    )
    _start(host, ["db", "web"])
    assert _names(host) == ["db", "web"]
    start_db, start_web = (t for t, _ in host.launched)
    assert start_web > start_db


def test_healthy_dependency_waits_for_the_health_check() -> None:
    host = FakeHost(
        {
            "db": FakeService(checked=True, script=_healthy_after(2.0)),
            "cache": FakeService(),
            "web": FakeService(deps=[("db", "healthy"), ("cache", "started")]),
        }
    )
    _start(host, ["cache", "db", "web"])
    when = {name: t for t, name in host.launched}
    assert when["cache"] == when["db"] == 0.0
    assert when["web"] == pytest.approx(2.0)


def test_completed_dependency_waits_for_exit_code_zero() -> None:
    host = FakeHost(
        {
            "migrate": FakeService(script=[(1.0, "status", "exited"), (1.0, "exit_code", 0)]),
            "app": FakeService(deps=[("migrate", "completed")]),
        }
    )
    _start(host, ["migrate", "app"])
    assert dict((n, t) for t, n in host.launched)["app"] == pytest.approx(1.0)


def test_a_chain_starts_in_dependency_order() -> None:
    host = FakeHost(
        {
            "a": FakeService(checked=True, script=_healthy_after(0.5)),
            "b": FakeService(deps=[("a", "healthy")], checked=True, script=_healthy_after(0.5)),
            "c": FakeService(deps=[("b", "healthy")]),
        }
    )
    _start(host, ["a", "b", "c"])
    assert _names(host) == ["a", "b", "c"]
    times = [t for t, _ in host.launched]
    assert times == sorted(times) and times[2] == pytest.approx(1.0)


def test_up_waits_until_every_checked_service_is_healthy() -> None:
    host = FakeHost({"db": FakeService(checked=True, script=_healthy_after(3.0))})
    _start(host, ["db"])
    assert host.now == pytest.approx(3.0)
    assert host.services["db"].snapshot.health == "healthy"


def test_only_the_selected_services_start() -> None:
    host = FakeHost({n: FakeService() for n in ("a", "b", "c")})
    Scheduler(host, clock=lambda: host.now).start(["a", "b", "c"], ["b"], 30)
    assert _names(host) == ["b"]


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "wanted", "problem"),
    [
        ([(1.0, "health", "unhealthy")], "healthy", "its health check failed"),
        ([(1.0, "status", "exited"), (1.0, "exit_code", 1)], "healthy", "it exited with code 1"),
        ([(1.0, "status", "exited"), (1.0, "exit_code", 2)], "completed", "it exited with code 2"),
    ],
)
def test_a_dependency_that_fails_fails_the_start(
    script: list[tuple[float, str, object]], wanted: str, problem: str
) -> None:
    host = FakeHost(
        {
            "db": FakeService(checked=True, script=script),
            "web": FakeService(deps=[("db", wanted)]),
        }
    )
    with pytest.raises(DependencyError) as caught:
        _start(host, ["db", "web"])
    assert str(caught.value.message) == f"web depends on db being {wanted}, but {problem}"
    assert _names(host) == ["db"]


def test_a_dependency_that_is_not_part_of_the_start_and_never_ran() -> None:
    host = FakeHost({"db": FakeService(), "web": FakeService(deps=[("db", "started")])})
    with pytest.raises(DependencyError, match="web depends on db being started, but it was not"):
        Scheduler(host, clock=lambda: host.now).start(["db", "web"], ["web"], 30)


def test_a_failed_start_is_raised_and_nothing_after_it_starts() -> None:
    boom = RuntimeError_("port 8000 is in use")
    host = FakeHost(
        {
            "db": FakeService(start_error=boom),
            "web": FakeService(deps=[("db", "started")]),
        }
    )
    with pytest.raises(RuntimeError_) as caught:
        _start(host, ["db", "web"])
    assert caught.value is boom
    assert _names(host) == ["db"]


def test_the_deadline_names_the_service_that_is_not_ready() -> None:
    host = FakeHost(
        {
            "db": FakeService(checked=True),  # never healthy
            "web": FakeService(deps=[("db", "healthy")]),
        }
    )
    with pytest.raises(DependencyError, match=r"^web is not ready, but not ready after 5 s"):
        _start(host, ["db", "web"], timeout=5)
    assert host.now == pytest.approx(5.0, abs=0.11)


def test_the_deadline_also_bounds_the_final_health_wait() -> None:
    host = FakeHost({"db": FakeService(checked=True, script=_healthy_after(9.0))})
    with pytest.raises(DependencyError, match="db is not ready, but not ready after 2 s"):
        _start(host, ["db"], timeout=2)


def test_a_stop_request_interrupts_a_start() -> None:
    host = FakeHost({"db": FakeService(checked=True), "web": FakeService(deps=[("db", "healthy")])})
    host.stop_requested = True
    with pytest.raises(RuntimeError_, match="stack fake: interrupted while starting"):
        _start(host, ["db", "web"])


def test_the_first_start_runs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first container of a stack is started before any other is launched (the
    start path's imports and the network's daemons), later ones side by side."""
    host = FakeHost({"a": FakeService(slow=2), "b": FakeService(), "c": FakeService()})
    launched_while_a_started: list[bool] = []
    original = host.launch

    def launch(name: str) -> Launch:
        a = host.services["a"].launch
        launched_while_a_started.append(a is None or a.done.is_set())
        return original(name)

    monkeypatch.setattr(host, "launch", launch)

    def finish_a_later() -> None:
        time.sleep(0.05)
        host._finish("a")

    finisher = threading.Thread(target=finish_a_later)
    finisher.start()
    _start(host, ["a", "b", "c"], warm=False)
    finisher.join(5)
    assert launched_while_a_started == [True, True, True]
    assert _names(host) == ["a", "b", "c"]
