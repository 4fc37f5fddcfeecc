"""A service's container inherits its image's health check, as docker's containers do.

Facts carried as data (no code):

- the defaults a 0 or missing field means: moby's daemon/health.go (moby/moby
  b985e2313a8676e18072b442911fc8f64f17d440) ``defaultProbeInterval`` 30 s,
  ``defaultProbeTimeout`` 30 s, ``defaultStartPeriod`` 0, ``defaultStartInterval`` 5 s,
  ``defaultProbeRetries`` 3 (``retries <= 0`` means it), through ``timeoutWithDefault``
  (only 0 means the default);
- the ``Test`` forms: ``getProbe`` there (``nil`` or empty: no probe; ``CMD``: exec,
  ``CMD-SHELL``: the shell, ``NONE``: no probe, anything else: a warning and no probe) and
  the Engine API's ``HealthConfig`` (api/swagger.yaml: durations in nanoseconds, ``[]``
  inherits, ``["NONE"]`` disables);
- the precedence: moby's daemon/commit.go ``merge`` (the run's check, else the image's).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit import Healthcheck, Service, Stack
from envkit.build import executor
from envkit.errors import DependencyError
from envkit.oci.types import canonical_json
from envkit.spec import steps as st
from envkit.stack import image_health, scheduler
from envkit.stack import state as ss
from envkit.stack.instance import Started
from envkit.stack.supervisor import Supervisor
from tests.unit.stack.test_supervisor import FakeOps, _left_running, _ps, _until

S = 1_000_000_000  # nanoseconds in a second

# docker's Healthcheck image config field -> the check envkit runs (test, interval,
# timeout, retries, start_period, start_interval), or None. Data: moby's defaults and
# Test forms above.
CONVERSION_TABLE: list[tuple[object, tuple[object, ...] | None]] = [
    (None, None),  # no field: no check
    ({}, None),  # Test missing: nothing to run
    ({"Test": []}, None),  # [] inherits (the image has nothing more to give)
    ({"Test": None, "Interval": 5 * S}, None),
    ({"Test": ["NONE"]}, None),  # disabled
    ({"Test": ["NONE"], "Interval": 5 * S}, None),
    (
        {"Test": ["CMD", "pg_isready", "-q"]},
        (("CMD", "pg_isready", "-q"), 30.0, 30.0, 3, 0.0, 5.0),  # every default
    ),
    (
        {"Test": ["CMD-SHELL", "curl -f localhost || exit 1"]},
        (("CMD-SHELL", "curl -f localhost || exit 1"), 30.0, 30.0, 3, 0.0, 5.0),
    ),
    (
        {
            "Test": ["CMD-SHELL", "true"],
            "Interval": 0,
            "Timeout": 0,
            "StartPeriod": 0,
            "StartInterval": 0,
            "Retries": 0,
        },
        (("CMD-SHELL", "true"), 30.0, 30.0, 3, 0.0, 5.0),  # 0 means the default
    ),
    (
        {
            "Test": ["CMD", "true"],
            "Interval": 1_500_000_000,
            "Timeout": 2 * S,
            "StartPeriod": 60 * S,
            "StartInterval": 250_000_000,
            "Retries": 5,
        },
        (("CMD", "true"), 1.5, 2.0, 5, 60.0, 0.25),
    ),
    ({"Test": ["CMD", "true"], "Retries": -1}, (("CMD", "true"), 30.0, 30.0, 3, 0.0, 5.0)),
    ({"Test": ["CMD", "true"], "Interval": 1_000_000}, (("CMD", "true"), 0.001, 30.0, 3, 0.0, 5.0)),
]


@pytest.mark.parametrize(("field", "expected"), CONVERSION_TABLE)
def test_dockers_field_converts_with_mobys_defaults(
    field: object, expected: tuple[object, ...] | None
) -> None:
    check = image_health.from_docker(field)
    if expected is None:
        assert check is None
    else:
        assert check is not None
        got = (
            check.test,
            check.interval,
            check.timeout,
            check.retries,
            check.start_period,
            check.start_interval,
        )
        assert got == expected


def test_the_defaults_are_mobys() -> None:
    assert (
        image_health.DEFAULT_INTERVAL,
        image_health.DEFAULT_TIMEOUT,
        image_health.DEFAULT_START_PERIOD,
        image_health.DEFAULT_START_INTERVAL,
        image_health.DEFAULT_RETRIES,
    ) == (30.0, 30.0, 0.0, 5.0, 3)
    # and envkit's own Healthcheck defaults agree (an inherited and an own check with the
    # same test, no options, are the same check)
    assert image_health.from_docker({"Test": ["CMD-SHELL", "true"]}) == Healthcheck("true")


# Malformed checks docker would not run (or that envkit's Healthcheck refuses): no check,
# and the reason (naming the field).
MALFORMED_TABLE: list[tuple[object, str]] = [
    ("CMD true", "image config Healthcheck: must be an object"),
    ({"Test": "CMD true"}, "Healthcheck.Test: must be a list of strings"),
    ({"Test": ["CMD", 1]}, "Healthcheck.Test: must be a list of strings"),
    ({"Test": ["BOGUS", "x"]}, "has unknown type 'BOGUS'"),  # moby: warns, no probe
    ({"Test": ["CMD"]}, "has no command"),
    ({"Test": ["CMD-SHELL", "a", "b"]}, "exactly one shell script"),
    ({"Test": ["CMD", "true"], "Interval": -5}, "Healthcheck.Interval: must be a duration"),
    ({"Test": ["CMD", "true"], "Timeout": "30s"}, "Healthcheck.Timeout: must be a duration"),
    ({"Test": ["CMD", "true"], "Retries": "3"}, "Healthcheck.Retries: must be an integer"),
]


@pytest.mark.parametrize(("field", "reason"), MALFORMED_TABLE)
def test_a_malformed_image_check_is_ignored_with_its_reason(field: object, reason: str) -> None:
    found = image_health.from_image({"Healthcheck": field})
    assert found.check is None and found.source == ""
    assert reason in found.problem and found.problem.startswith("image config")


def _label(check: Healthcheck) -> str:
    return canonical_json(check.canonical()).decode()


def test_the_label_is_the_one_envkit_builds_write() -> None:
    assert image_health.LABEL == executor.HEALTHCHECK_LABEL
    check = Healthcheck(["pg_isready"], interval=0.1, timeout=0.3, retries=60, start_interval=0.02)
    settings = executor.healthcheck_change(st.SetHealthcheck(check), {})
    found = image_health.from_image(settings)
    assert found.source == "label" and found.check == check  # exact, no ns rounding
    # docker's field alone gives the same check (what a registry copy without labels has)
    docker = image_health.from_docker(settings["Healthcheck"])
    assert docker is not None and docker.test == check.test and docker.retries == 60


def test_a_disabled_image_check_is_none() -> None:
    settings = executor.healthcheck_change(st.SetHealthcheck(Healthcheck(["NONE"])), {})
    assert image_health.from_image(settings) == image_health.ImageCheck(None, "label")
    assert image_health.from_image({"Healthcheck": {"Test": ["NONE"]}}).check is None


def test_a_stale_or_broken_label_gives_way_to_dockers_field() -> None:
    old = Healthcheck("old-check", interval=1)
    docker = {"Test": ["CMD-SHELL", "new-check"], "Interval": 2 * S}
    stale = image_health.from_image(
        {"Labels": {image_health.LABEL: _label(old)}, "Healthcheck": docker}
    )
    assert stale.source == "config" and stale.check == Healthcheck("new-check", interval=2)
    for bad in ("{", json.dumps({"kind": "other"}), json.dumps({"kind": "healthcheck"})):
        found = image_health.from_image(
            {"Labels": {image_health.LABEL: bad}, "Healthcheck": docker}
        )
        assert found.source == "config"
    # a label without docker's field (an OCI-format copy that dropped it) still counts
    alone = image_health.from_image({"Labels": {image_health.LABEL: _label(old)}})
    assert alone.source == "label" and alone.check == old


OWN = Healthcheck("own")
IMAGE = Healthcheck("image")
# (service's own, image's) -> effective. Data: moby's merge (the run's check, else the
# image's; ["NONE"] turns a check off).
PRECEDENCE_TABLE = [
    (OWN, IMAGE, OWN),  # own > image
    (OWN, None, OWN),
    (Healthcheck(["NONE"]), IMAGE, None),  # disabled > image
    (None, IMAGE, IMAGE),  # inherited
    (None, Healthcheck(["NONE"]), None),
    (None, None, None),
]


@pytest.mark.parametrize(("own", "image", "expected"), PRECEDENCE_TABLE)
def test_precedence(own: Healthcheck | None, image: Healthcheck | None, expected: object) -> None:
    assert image_health.effective(own, image) == expected


def test_label_wins_over_dockers_field_wins_over_none() -> None:
    exact = Healthcheck("true", interval=0.1)
    both = {
        "Labels": {image_health.LABEL: _label(exact)},
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 100_000_000},
    }
    assert image_health.from_image(both).source == "label"
    assert image_health.from_image({"Healthcheck": both["Healthcheck"]}).source == "config"
    assert image_health.from_image({}) == image_health.ImageCheck()


# -- the supervisor (fake containers) -----------------------------------------------------


class ImageOps(FakeOps):
    """Fake containers whose images carry health checks: service -> (check, problem)."""

    def __init__(self, images: dict[str, tuple[Healthcheck | None, str]], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.images = images
        self.checks: list[tuple[str, tuple[str, ...]]] = []

    def start(self, stack: Stack, name: str, image: str, state: ss.StackState) -> Started:
        started = super().start(stack, name, image, state)
        check, problem = self.images.get(name, (None, ""))
        started.image_healthcheck, started.image_healthcheck_problem = check, problem
        return started

    def adopt(
        self, stack: Stack, name: str, container_id: str, state: ss.StackState
    ) -> Started | None:
        started = super().adopt(stack, name, container_id, state)
        if started is not None:
            started.image_healthcheck = self.images.get(name, (None, ""))[0]
        return started

    def health_check(self, container: object, check: Healthcheck) -> tuple[bool, str]:
        self.checks.append((getattr(container, "service", ""), check.test))
        return super().health_check(container, check)  # type: ignore[arg-type]


QUICK = Healthcheck("image-check", interval=0.02, timeout=1, retries=5)


@pytest.fixture
def supervisors(envkit_home: Path) -> Iterator[list[Supervisor]]:
    """Supervisors a test starts with :func:`_run`; each stopped, its ``run`` thread
    joined, then torn down (in this order, as the daemon does: a ``run`` still handling
    an exit would save the state teardown removes)."""
    held: list[Supervisor] = []
    yield held
    for supervisor in held:
        supervisor.request_stop()
        for thread in _RUNS.pop(id(supervisor), []):
            thread.join(10)
        supervisor.teardown()


#: The ``run`` threads of the supervisors started here, by ``id(supervisor)``.
_RUNS: dict[int, list[threading.Thread]] = {}


def _run(supervisor: Supervisor) -> None:
    """``supervisor.run()`` in a thread the ``supervisors`` fixture joins."""
    thread = threading.Thread(target=supervisor.run, daemon=True)
    _RUNS.setdefault(id(supervisor), []).append(thread)
    thread.start()


def _start(held: list[Supervisor], stack: Stack, ops: FakeOps, report: list[str]) -> Supervisor:
    names = stack.start_order()
    supervisor = Supervisor(
        stack, {n: "img" for n in names}, names, ops=ops, stop_grace=1, report=report.append
    )
    held.append(supervisor)
    supervisor.start()
    _run(supervisor)
    return supervisor


def test_an_inherited_check_gates_a_healthy_dependency(supervisors: list[Supervisor]) -> None:
    db = Service("db", image="img")  # no check of its own: its image's
    web = Service("web", image="img", depends_on={db: "healthy"})
    ops = ImageOps({"db": (QUICK, "")}, health={"db": [False, False, True]})
    supervisor = _start(supervisors, Stack("inh", services=[web, db]), ops, [])
    assert [c.service for c in ops.started] == ["db", "web"]
    assert ops.checks[:3] == [("db", ("CMD-SHELL", "image-check"))] * 3
    state = _ps(supervisor)
    assert state.services["db"].health == "healthy"  # `ps` shows it as an own check's
    assert state.services["web"].health == ""


def test_an_own_check_wins_and_none_turns_the_image_check_off(
    supervisors: list[Supervisor],
) -> None:
    own = Healthcheck("own-check", interval=0.02, timeout=1)
    a = Service("a", image="img", healthcheck=own)
    b = Service("b", image="img", healthcheck=Healthcheck(["NONE"]))
    ops = ImageOps({"a": (QUICK, ""), "b": (QUICK, "")})
    supervisor = _start(supervisors, Stack("own", services=[a, b]), ops, [])
    _until(lambda: _ps(supervisor).services["a"].health == "healthy")
    assert {test for service, test in ops.checks if service == "a"} == {("CMD-SHELL", "own-check")}
    assert all(service != "b" for service, _ in ops.checks)
    assert _ps(supervisor).services["b"].health == ""


def test_a_healthy_dependency_without_any_check_fails_up_with_composes_message(
    envkit_home: Path,
) -> None:
    db = Service("db", image="img")
    web = Service("web", image="img", depends_on={db: "healthy"})
    ops = ImageOps({})  # the image has no HEALTHCHECK
    stack = Stack("nochk", services=[web, db])
    supervisor = Supervisor(stack, {"db": "img", "web": "img"}, ["db", "web"], ops=ops)
    with pytest.raises(DependencyError) as caught:
        supervisor.start()  # at once: no wait for a check that never runs
    error = caught.value
    assert error.exit_code == 2
    assert error.message.splitlines() == [
        "stack nochk: web depends on db being healthy: container nochk-db-1 has no "
        "healthcheck configured (it has none of its own and its image has none)"
    ]
    assert error.hint is not None and "healthcheck=Healthcheck(" in error.hint
    assert [c.service for c in ops.started] == ["db"] and ops.torn_down


def test_a_malformed_image_check_is_reported_once_and_not_run(
    supervisors: list[Supervisor],
) -> None:
    problem = "image config Healthcheck.Test: has unknown type 'BOGUS'"
    job = Service("job", image="img", restart="always")
    ops = ImageOps({"job": (None, problem)}, exits={"job": [(0.01, 1), (0.01, 1)]})
    report: list[str] = []
    _start(supervisors, Stack("bad", services=[job]), ops, report)
    _until(lambda: len(ops.of("job")) >= 2)
    assert report.count(f"job: the image's health check is ignored: {problem}") == 1
    assert ops.checks == []


def test_an_adopted_container_runs_its_images_check(supervisors: list[Supervisor]) -> None:
    db = Service("db", image="img")
    stack = Stack("adopt", services=[db])
    ops = ImageOps({"db": (QUICK, "")})
    alive = _left_running(ops, "adopt", "db", 7)
    previous = ss.StackState(
        name="adopt",
        supervisor=999_999_999,  # not alive
        order=["db"],
        services={
            "db": ss.ServiceState(
                container=alive.id,
                status="running",
                image_id="img",
                spec_key=ss.spec_key(stack, "db", "img"),
            )
        },
    )
    supervisor = Supervisor(stack, {"db": "img"}, ["db"], ops=ops, stop_grace=1, previous=previous)
    supervisors.append(supervisor)
    supervisor.start()
    _run(supervisor)
    assert ops.adopted == [alive.id] and ops.started == []
    _until(lambda: _ps(supervisor).services["db"].health == "healthy")
    assert ops.checks[0] == ("db", ("CMD-SHELL", "image-check"))


def test_the_schedulers_reason_is_the_supervisors_trigger() -> None:
    no_check = scheduler.Snapshot(status="running", has_container=True)
    assert scheduler.condition(no_check, "healthy") == scheduler.NO_HEALTH_CHECK
