"""When the stack's health checks run: docker's interval rule, on a fake clock.

The rule is moby's ``monitor``/``getInterval`` (daemon/health.go, moby/moby
b985e2313a8676e18072b442911fc8f64f17d440): the wait is ``start_interval`` while the
container's status is ``starting`` and less than ``start_period`` has passed since it
started, else ``interval``; ``start_interval`` defaults to 5 s, ``start_period`` to 0 (so
no start interval without a start period). envkit runs the first check at once.
"""

from __future__ import annotations

import pytest

from envkit.spec import Healthcheck
from envkit.stack import health

# (start_period, start_interval or None for the default, interval, status, seconds since
#  start at the moment the next wait is chosen) -> the wait. Data from moby's rule above.
GET_INTERVAL_TABLE = [
    (0.0, None, 30.0, health.STARTING, 0.0, 30.0),  # no start period: interval
    (0.0, 1.0, 30.0, health.STARTING, 0.0, 30.0),  # start_interval alone does nothing
    (60.0, None, 30.0, health.STARTING, 1.0, 5.0),  # default start interval: 5 s
    (60.0, 2.0, 30.0, health.STARTING, 59.9, 2.0),  # within the start period
    (60.0, 2.0, 30.0, health.STARTING, 60.0, 30.0),  # time.Since(started) >= startPeriod
    (60.0, 2.0, 30.0, health.STARTING, 61.0, 30.0),
    (60.0, 2.0, 30.0, health.HEALTHY, 1.0, 30.0),  # healthy: interval at once
    (60.0, 2.0, 30.0, health.UNHEALTHY, 1.0, 30.0),  # only "starting" gets it
]


@pytest.mark.parametrize(
    ("start_period", "start_interval", "interval", "status", "elapsed", "expected"),
    GET_INTERVAL_TABLE,
)
def test_interval_follows_dockers_rule(
    start_period: float,
    start_interval: float | None,
    interval: float,
    status: str,
    elapsed: float,
    expected: float,
) -> None:
    check = Healthcheck("true", interval=interval, start_period=start_period)
    if start_interval is not None:
        check = Healthcheck(
            "true", interval=interval, start_period=start_period, start_interval=start_interval
        )
    tracker = health.HealthTracker(check, started=100.0)
    tracker.status = status
    assert tracker.interval(100.0 + elapsed) == expected
    assert tracker.next_run(100.0 + elapsed, 100.0 + elapsed) == 100.0 + elapsed + expected


def test_a_postgres_like_schedule_on_a_fake_clock() -> None:
    """Checks every 20 ms until the first success, then every 5 s."""
    check = Healthcheck("true", interval=5, start_period=60, start_interval=0.02, retries=3)
    tracker = health.HealthTracker(check, started=0.0)
    clock, last, runs = 0.0, None, []
    results = iter([False] * 10 + [True, True, True])
    for ok in results:
        clock = tracker.next_run(last, clock)
        runs.append(round(clock, 6))
        last = clock
        tracker.record(ok, "", clock)
        clock += 0.001  # the run took 1 ms
    assert runs[0] == 0.0  # at once at start, as before
    assert runs[1:11] == [round(0.02 * i, 6) for i in range(1, 11)]
    assert tracker.status == health.HEALTHY
    assert runs[11] == round(0.2 + 5, 6)  # healthy after the 11th: the calm interval
    assert runs[12] == round(5.2 + 5, 6)


def test_a_check_still_failing_after_the_start_period_slows_down_and_counts() -> None:
    check = Healthcheck("false", interval=10, start_period=1, start_interval=0.5, retries=2)
    tracker = health.HealthTracker(check, started=0.0)
    clock, last = 0.0, None
    seen = []
    for _ in range(5):
        clock = tracker.next_run(last, clock)
        last = clock
        seen.append((clock, tracker.record(False, "no", clock)))
    # 0 and 0.5 are in the start period (failures do not count), 1.0 is not:
    assert [t for t, _ in seen] == [0.0, 0.5, 1.0, 11.0, 21.0]
    assert [s for _, s in seen] == [health.STARTING] * 3 + [health.UNHEALTHY] * 2


def test_next_run_without_now_takes_the_last_start() -> None:
    check = Healthcheck("true", interval=3, start_period=10, start_interval=1)
    tracker = health.HealthTracker(check, started=0.0)
    assert tracker.next_run(None) == 0.0
    assert tracker.next_run(2.0) == 3.0
    assert tracker.next_run(10.0) == 13.0
