"""Restart policies and health checks as docker applies them, with fakes (no containers).

Carried from moby (facts and test data, not code):

- ``restartmanager/restartmanager.go`` (``ShouldRestart``): every exit first moves the
  backoff (100 ms after a run of 10 s or more, else doubled, at most one minute), then
  ``always`` restarts, ``unless-stopped`` unless the user stopped it, ``on-failure`` on
  a non-zero exit while the restart count is below its maximum (0: no maximum); a
  decided restart counts.
- ``restartmanager/restartmanager_test.go``: ``TestRestartManagerTimeout`` and
  ``TestRestartManagerTimeoutReset``.
- ``container/container.go`` (``ResetRestartManager(true)``, called by ``docker start``):
  a manual start resets the count.
- ``daemon/health_test.go`` ``TestHealthStates`` (its three sequences below), after
  ``daemon/health.go`` ``handleProbeResult``.
"""

from __future__ import annotations

import pytest

from envkit import Healthcheck, Service
from envkit.stack import health
from envkit.stack.instance import Instance, ServiceRuntime, Started
from envkit.stack.policy import MAX_DELAY, STABLE_AFTER, RestartManager, RestartPolicy

# -- the restart decision --------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "code", "count", "stopped", "restart"),
    [
        ("no", 1, 0, False, False),
        ("no", 0, 0, False, False),
        ("always", 0, 0, False, True),
        ("always", 1, 100, False, True),
        ("always", 0, 0, True, True),  # a daemon restart brings `always` back
        ("unless-stopped", 0, 0, False, True),
        ("unless-stopped", 137, 7, False, True),
        ("unless-stopped", 0, 0, True, False),
        ("on-failure", 0, 0, False, False),
        ("on-failure", 1, 0, False, True),
        ("on-failure", 1, 1000, False, True),  # no maximum
        ("on-failure:3", 1, 2, False, True),
        ("on-failure:3", 1, 3, False, False),
        ("on-failure:3", 0, 0, False, False),
        ("on-failure", None, 0, False, True),  # exit unknown (supervisor lost): a failure
    ],
)
def test_restart_decision(
    policy: str, code: int | None, count: int, stopped: bool, restart: bool
) -> None:
    manager = RestartManager(RestartPolicy.parse(policy), count)
    delay = manager.on_exit(code, ran_for=1.0, manually_stopped=stopped)
    assert (delay is not None) is restart
    assert manager.count == count + (1 if restart else 0)


def test_restart_manager_timeout() -> None:
    # moby TestRestartManagerTimeout: always, exit 0 after 1 s: restart in 100 ms.
    manager = RestartManager(RestartPolicy.parse("always"))
    assert manager.on_exit(0, ran_for=1.0) == pytest.approx(0.1)


def test_restart_manager_timeout_reset() -> None:
    # moby TestRestartManagerTimeoutReset: a 5 s backoff, then a 10 s run: back to 100 ms.
    manager = RestartManager(RestartPolicy.parse("always"))
    manager.delay = 5.0
    assert manager.on_exit(0, ran_for=10.0) == pytest.approx(0.1)


def test_backoff_doubles_up_to_one_minute_for_quick_exits() -> None:
    manager = RestartManager(RestartPolicy.parse("always"))
    delays = [manager.on_exit(1, ran_for=0.5) for _ in range(12)]
    assert delays[:5] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert delays[-1] == MAX_DELAY and max(d or 0 for d in delays) == MAX_DELAY
    # A stable run starts a new sequence.
    assert manager.on_exit(1, ran_for=STABLE_AFTER) == pytest.approx(0.1)
    assert manager.on_exit(1, ran_for=STABLE_AFTER - 0.1) == pytest.approx(0.2)


def test_on_failure_gives_up_after_its_maximum() -> None:
    manager = RestartManager(RestartPolicy.parse("on-failure:2"))
    assert [manager.on_exit(1, ran_for=0.0) is not None for _ in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    assert manager.count == 2
    manager.reset()  # `start` by hand: two more
    assert manager.count == 0 and manager.on_exit(1, ran_for=0.0) == pytest.approx(0.1)


def test_the_backoff_moves_even_when_no_restart_follows() -> None:
    """As moby: the timeout advances before the policy decides."""
    manager = RestartManager(RestartPolicy.parse("on-failure"))
    assert manager.on_exit(0, ran_for=0.0) is None
    assert manager.on_exit(1, ran_for=0.0) == pytest.approx(0.2)


# -- a service's exits -------------------------------------------------------------------


class _Container:
    id, name, pid = "c" * 64, "s-web-1", 4242


def _instance(since: float) -> Instance:
    return Instance(Started(_Container(), "2026-01-01T00:00:00Z"), since)


def test_service_exit_schedules_the_restart_after_the_backoff() -> None:
    svc = ServiceRuntime.of(Service("web", image="busybox:1", restart="on-failure:1"))
    svc.instance = first = _instance(since=100.0)
    assert svc.on_exit(first, 1, now=101.0, stopping=False) == pytest.approx(101.1)
    assert first.exited and svc.restart_at == pytest.approx(101.1)
    svc.instance = second = _instance(since=101.1)
    assert svc.on_exit(second, 1, now=102.0, stopping=False) is None  # the one retry is spent
    assert svc.restart_at is None


@pytest.mark.parametrize("why", ["stopping", "stopped", "replaced"])
def test_no_restart_while_stopping_after_stop_or_for_an_old_container(why: str) -> None:
    svc = ServiceRuntime.of(Service("web", image="busybox:1", restart="always"))
    svc.instance = instance = _instance(since=0.0)
    if why == "stopped":
        svc.stopped = True
    if why == "replaced":
        svc.instance = _instance(since=1.0)
    assert svc.on_exit(instance, 0, now=5.0, stopping=why == "stopping") is None
    assert instance.exited and svc.restart_at is None


def test_snapshot_of_a_service_that_is_waiting_for_its_restart() -> None:
    from envkit.stack.state import ServiceState

    svc = ServiceRuntime.of(
        Service("db", image="busybox:1", restart="always", healthcheck=Healthcheck("true"))
    )
    svc.instance = instance = _instance(since=0.0)
    svc.on_exit(instance, 3, now=1.0, stopping=False)
    snap = svc.snapshot(ServiceState(status="restarting", exit_code=3))
    assert snap.restarting and snap.container_exited and snap.checked and snap.has_container


# -- health: moby TestHealthStates ---------------------------------------------------------

# (retries, start_period, [(seconds after the start the run began, exit code,
#   expected status, expected failing streak)])
HEALTH_STATES = [
    # starting -> failed -> success -> failed, retries 1
    (1, 0.0, [(1, 1, "unhealthy", 1), (2, 0, "healthy", 0), (3, 1, "unhealthy", 1)]),
    # retries 3
    (
        3,
        0.0,
        [
            (20, 1, "starting", 1),
            (40, 1, "starting", 2),
            (60, 1, "unhealthy", 3),
            (80, 0, "healthy", 0),
        ],
    ),
    # start period 30 s, retries 2
    (2, 30.0, [(20, 1, "starting", 0), (50, 1, "starting", 1), (80, 0, "healthy", 0)]),
]


@pytest.mark.parametrize(("retries", "start_period", "runs"), HEALTH_STATES)
def test_health_states(
    retries: int, start_period: float, runs: list[tuple[float, int, str, int]]
) -> None:
    check = Healthcheck("true", retries=retries, start_period=start_period)
    tracker = health.HealthTracker(check, started=1000.0)
    for after, code, status, streak in runs:
        assert tracker.record(code == 0, f"exit {code}", now=1000.0 + after) == status
        assert tracker.failures == streak


def test_failures_in_the_start_period_count_once_it_was_healthy() -> None:
    """docker ignores start-period failures only while the container is ``starting``."""
    tracker = health.HealthTracker(Healthcheck("true", retries=1, start_period=60), started=0)
    assert tracker.record(True, "", now=1) == health.HEALTHY
    assert tracker.record(False, "down", now=2) == health.UNHEALTHY


def test_a_run_that_began_in_the_start_period_does_not_count() -> None:
    """docker times a run by its start: one that began inside the period and ended
    after it is still ignored."""
    tracker = health.HealthTracker(Healthcheck("true", retries=1, start_period=10), started=0)
    assert tracker.record(False, "slow", now=9.9) == health.STARTING
    assert tracker.record(False, "slow", now=10.0) == health.UNHEALTHY
