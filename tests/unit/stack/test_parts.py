"""The pure parts of stacks: restart policies and backoff, the health state machine,
service selection and checks, state files, log prefixes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from envkit import Healthcheck, Service, Stack
from envkit.errors import EnvkitError, SpecError
from envkit.stack import api, health, logs
from envkit.stack import state as ss
from envkit.stack.policy import MAX_DELAY, RestartPolicy, backoff


@pytest.mark.parametrize(
    ("policy", "code", "restarts", "expected"),
    [
        ("no", 1, 0, False),
        ("always", 0, 5, True),
        ("unless-stopped", 0, 0, True),
        ("on-failure", 0, 0, False),
        ("on-failure", 2, 100, True),
        ("on-failure:2", 1, 1, True),
        ("on-failure:2", 1, 2, False),
    ],
)
def test_restart_policy(policy: str, code: int, restarts: int, expected: bool) -> None:
    assert RestartPolicy.parse(policy).should_restart(code, restarts) is expected


def test_backoff_doubles_up_to_a_limit() -> None:
    assert [backoff(n) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff(50) == MAX_DELAY


def test_health_failures_in_start_period_do_not_count_but_a_success_does() -> None:
    tracker = health.HealthTracker(Healthcheck("true", retries=2, start_period=10), started=0)
    assert tracker.record(False, "no", now=1) == health.STARTING
    assert tracker.record(False, "no", now=2) == health.STARTING
    assert tracker.record(True, "ok", now=3) == health.HEALTHY
    assert tracker.record(False, "bad", now=11) == health.HEALTHY
    assert tracker.record(False, "bad", now=12) == health.UNHEALTHY
    assert tracker.last_output == "bad"
    assert tracker.record(True, "", now=13) == health.HEALTHY and tracker.failures == 0


def test_health_schedule_and_argv() -> None:
    tracker = health.HealthTracker(Healthcheck(["pg_isready"], interval=0.5), started=7)
    assert tracker.next_run(None) == 7 and tracker.next_run(8) == 8.5
    assert health.argv(Healthcheck("exit 1")) == ["/bin/sh", "-c", "exit 1"]
    assert health.argv(Healthcheck(["a", "b"])) == ["a", "b"]


def test_health_output_is_bounded() -> None:
    tracker = health.HealthTracker(Healthcheck("true"), started=0)
    tracker.record(False, "x" * 10_000, now=1)
    assert len(tracker.last_output) == health.OUTPUT_LIMIT


def _stack() -> Stack:
    db = Service("db", image="busybox:1", healthcheck=Healthcheck("true"))
    cache = Service("cache", image="busybox:1")
    web = Service("web", image="busybox:1", depends_on={db: "healthy", cache: "started"})
    tool = Service("tool", image="busybox:1")
    return Stack("shop", services=[web, db, cache, tool])


def test_selected_services_bring_their_dependencies_in_order() -> None:
    stack = _stack()
    assert api.selected(stack, ["web"]) == ["cache", "db", "web"]
    assert api.selected(stack, []) == stack.start_order()
    with pytest.raises(SpecError, match="no service 'nope'"):
        api.selected(stack, ["nope"])


def test_healthy_condition_needs_a_health_check() -> None:
    db = Service("db", image="busybox:1", healthcheck=Healthcheck(["NONE"]))
    web = Service("web", image="busybox:1", depends_on={db: "healthy"})
    stack = Stack("s", services=[web, db])
    with pytest.raises(SpecError, match="health check disabled"):
        api.check(stack, stack.start_order())
    api.check(_stack(), _stack().start_order())
    # No check of its own: its image's may do (docker's inheritance; the start tells).
    inherits = Stack("s", services=[web, Service("db", image="busybox:1")])
    api.check(inherits, inherits.start_order())


def test_state_round_trips_and_ignores_unknown_fields(envkit_home: Path) -> None:
    record = ss.StackState(name="shop", order=["web"], services={"web": ss.ServiceState()})
    record.services["web"].restarts = 3
    record.save()
    data = json.loads((envkit_home / "stacks/shop/state.json").read_text())
    data["future"] = 1
    data["services"]["web"]["future"] = 2
    (envkit_home / "stacks/shop/state.json").write_text(json.dumps(data))
    loaded = ss.require("shop")
    assert loaded.services["web"].restarts == 3 and loaded.order == ["web"]
    assert [s.name for s in ss.all_stacks()] == ["shop"]
    assert not loaded.supervised  # no supervisor was claimed
    with pytest.raises(EnvkitError, match="is not up"):
        ss.require("other")


def test_logs_are_prefixed_per_service(envkit_home: Path) -> None:
    from envkit.runtime.logs import LogWriter

    ss.StackState(name="shop").save()
    top = envkit_home / "stacks/shop/logs"
    top.mkdir()
    for name, text in (("db", b"ready\n"), ("web", b"one\ntwo")):
        writer = LogWriter(str(top / name))
        writer.feed("stdout", text)
        writer.close()
    out = io.StringIO()
    logs.stream("shop", ["db", "web"], out)
    assert out.getvalue() == "db  | ready\nweb | one\nweb | two\n"
    assert logs.tail(top / "web", 1) == ["two"]
    assert logs.service_text("shop", "web") == "one\ntwo"


def test_down_of_a_stack_by_name_loads_no_spec_objects(envkit_home: Path) -> None:
    # `envkit down` / `envkit stack ps` find the stack in its state files: importing the
    # spec (dataclasses, validators, the image model) would only slow them down.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from envkit.stack import api, cleanup, control, secrets\n"
        "from envkit.stack import state\n"
        "assert not api.down('nothing-here')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('envkit.spec'))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
