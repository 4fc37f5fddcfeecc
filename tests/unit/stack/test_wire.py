"""What crosses process boundaries for a stack, without containers: the spec JSON of a
``replace`` (exact round trip of every example stack, refusals), the detached
supervisor's start report, and ``stack ps`` of a stack whose supervisor was killed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envkit import Healthcheck, Image, Secret, Service, Stack, Volume
from envkit.errors import DependencyError, EnvkitError, RuntimeError_, SpecDataError
from envkit.spec.loader import load_stack
from envkit.spec.readiness import Ready
from envkit.stack import daemon, recovery, specjson
from envkit.stack import state as ss

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*/stack.py"))


def _round_trip(stack: Stack) -> Stack:
    data = json.loads(json.dumps(specjson.encode(stack)))
    back = specjson.decode_stack(data, stack.name)
    assert isinstance(back, Stack)
    return back


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_stacks_round_trip_exactly(path: Path) -> None:
    stack = load_stack(path)
    back = _round_trip(stack)
    assert back == stack and back.base_dir == stack.base_dir
    assert back.canonical() == stack.canonical()
    for name in (s.name for s in stack.services):
        assert ss.spec_key(back, name, "img") == ss.spec_key(stack, name, "img")


def test_every_kind_of_spec_object_round_trips() -> None:
    image = (
        Image.from_("busybox:1")
        .env(A="1")
        .copy("a.txt", "/a.txt", chmod=0o644)
        .run("echo hi", secrets=[Secret.from_env("TOKEN")])
        .workdir("/srv")
        .user("nobody")
        .expose(8080)
        .entrypoint(["sh"])
        .cmd(["-c", "true"])
        .label(team="x")
        .healthcheck(Healthcheck("true"))
    )
    db = Service(
        "db",
        image=image,
        healthcheck=Healthcheck(["pg_isready"], interval=1, retries=3, start_period=2.5),
        ready=[Ready.tcp(5432), Ready.log("ready"), Ready.http("/", 80, status=204)],
        volumes={Volume("data", options={"size": "1m"}): "/data", "./conf": "/conf:ro"},
        secrets=[Secret.from_file("pw.txt")],
        ports={0: 5432},
        memory="64m",
        cpus=0.5,
        restart="on-failure:3",
        cap_add=["NET_ADMIN"],
    )
    web = Service("web", image="busybox:1", depends_on={db: "healthy"}, aliases=["www"])
    stack = Stack("all", services=[db, web]).with_base_dir("/srv/project")
    back = _round_trip(stack)
    assert back == stack and back.base_dir == Path("/srv/project")
    assert back.canonical() == stack.canonical()
    assert back["db"].image.steps == stack["db"].image.steps


def test_decoding_names_where_the_data_is_wrong() -> None:
    data = specjson.encode(Stack("s", services=[Service("web", image="busybox:1")]))
    data["fields"]["services"]["tuple"][0]["fields"]["image"] = {"type": "os.system", "fields": {}}
    with pytest.raises(SpecDataError) as caught:
        specjson.decode_stack(data, "s")
    assert caught.value.message == "stack.services[0].image: 'os.system' is not a spec class"
    with pytest.raises(TypeError, match="a dict is not part of a spec"):
        specjson.encode({"a": 1})


# -- the detached supervisor's report --------------------------------------------------


def test_start_report_gives_the_pid_or_raises_the_same_error() -> None:
    assert daemon.pid_from('{"pid": 4242}') == 4242
    with pytest.raises(DependencyError) as dep:
        daemon.pid_from(json.dumps(daemon.failure_report(DependencyError("db is not ready"))))
    assert dep.value.message == "db is not ready"
    bad_input = EnvkitError("host port 8000 is in use", hint="ss -ltnp")
    with pytest.raises(RuntimeError_) as caught:
        daemon.pid_from(json.dumps(daemon.failure_report(bad_input)))
    assert caught.value.exit_code == bad_input.exit_code and caught.value.hint == "ss -ltnp"
    with pytest.raises(RuntimeError_, match="died while starting"):
        daemon.pid_from("")
    with pytest.raises(RuntimeError_, match="ValueError: boom"):
        daemon.pid_from(json.dumps(daemon.failure_report(ValueError("boom"))))


# -- stack ps after kill -9 of the supervisor ---------------------------------------------


def test_ps_of_a_lost_supervisor_shows_what_runs(envkit_home: Path) -> None:
    record = ss.StackState(
        name="lost",
        supervisor=999_999_999,
        order=["a", "b", "c", "d"],
        services={
            "a": ss.ServiceState(container="a" * 64, status="running", health="healthy"),
            "b": ss.ServiceState(container="b" * 64, status="exited", exit_code=3),
            "c": ss.ServiceState(status="stopped"),
            "d": ss.ServiceState(container="d" * 64, status="restarting", exit_code=1),
        },
    )
    seen = recovery.as_seen(record)
    assert seen is not record and record.services["a"].status == "running"
    assert [recovery.status_text(seen.services[n]) for n in seen.order] == [
        recovery.LOST,
        "exited (3)",
        "stopped",
        recovery.LOST,
    ]
    assert seen.services["a"].health == ""
    assert recovery.survivors(record) == {}


# -- the detached supervisor ---------------------------------------------------------------


def test_the_supervisor_does_not_keep_the_stack_lock(envkit_home: Path) -> None:
    """``up`` starts the supervisor while it holds the stack's flock; killed before it
    unlocks, the lock must not live on in the supervisor (a forked supervisor kept it,
    and later ``up`` and ``down`` waited for it). The daemon is a fresh interpreter that
    inherits only its pipes: here it fails on a bad request while the lock is held, and
    the lock is free for another holder once ours is closed."""
    import fcntl
    import os

    path = ss.stacks_dir() / ".locks" / "held"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with pytest.raises(RuntimeError_, match="KeyError"):
        daemon.start_detached({"no": "stack"})
    os.close(fd)
    probe = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)


def test_a_bad_start_request_comes_back_as_the_daemons_error(envkit_home: Path) -> None:
    request = daemon.request_of(
        Stack("s", services=[Service("a", image="busybox:1")]),
        {"a": "busybox:1"},
        ["a"],
        file="",
        owner=None,
        timeout=1.0,
        previous=None,
    )
    request["stack"]["type"] = "stack.NotAStack"
    with pytest.raises(RuntimeError_, match="not a spec class"):
        daemon.start_detached(request)
