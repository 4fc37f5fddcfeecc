"""The whole supervisor over fake containers (:class:`ContainerOps` fake: no runtime, no
namespaces): start order, restarts with docker's policies, health checks gating a
dependent service, the control socket's typed requests (``ps``, ``stop``, ``start``,
``restart``, ``replace``, ``down``) and its refusals (unknown ops, wrong types, a
pickled stack)."""

from __future__ import annotations

import base64
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from envkit import Healthcheck, Service, Stack
from envkit.errors import DependencyError, EnvkitError
from envkit.spec import Healthcheck as HealthcheckSpec
from envkit.spec.readiness import Ready
from envkit.stack import control, specjson
from envkit.stack import state as ss
from envkit.stack.instance import Handle, Started
from envkit.stack.supervisor import Supervisor


@dataclass(eq=False)
class FakeContainer:
    id: str
    name: str
    pid: int
    service: str
    gone: threading.Event = field(default_factory=threading.Event)
    code: int | None = None

    def exit(self, code: int) -> None:
        if not self.gone.is_set():
            self.code = code
            self.gone.set()


class FakeOps:
    """Containers that run until signalled, or exit as ``exits`` says: service ->
    list of (seconds after start, exit code), one for each successive container."""

    def __init__(
        self,
        exits: dict[str, list[tuple[float, int]]] | None = None,
        health: dict[str, list[bool]] | None = None,
        start_errors: dict[str, EnvkitError] | None = None,
    ) -> None:
        self.exits = exits or {}
        self.health = health or {}
        self.start_errors = start_errors or {}
        self.started: list[FakeContainer] = []
        self.removed: list[str] = []
        self.signals: list[tuple[str, int]] = []
        self.torn_down = False
        self.prepared: list[list[str]] = []
        self._lock = threading.Lock()
        #: Containers a lost supervisor left running, by id.
        self.alive: dict[str, FakeContainer] = {}
        self.adopted: list[str] = []
        self.forgotten: list[str] = []
        #: The services of each hold the supervisor asked for (a fake cannot exec).
        self.holds: list[list[str]] = []

    def prepare(self, stack: Stack, names: Sequence[str], state: ss.StackState) -> None:
        self.prepared.append(list(names))

    def start(self, stack: Stack, name: str, image: str, state: ss.StackState) -> Started:
        if name in self.start_errors:
            raise self.start_errors[name]
        with self._lock:
            n = len(self.started) + 1
            container = FakeContainer(f"{n:064x}", f"{stack.name}-{name}-1", 10_000 + n, name)
            self.started.append(container)
        plan = self.exits.get(name)
        if plan:
            after, code = plan.pop(0)
            timer = threading.Timer(after, container.exit, args=(code,))
            timer.daemon = True
            timer.start()
        return Started(container, f"2026-01-01T00:00:{n:02d}Z", [f"127.0.0.1:{8000 + n}->80/tcp"])

    def adopt(
        self, stack: Stack, name: str, container_id: str, state: ss.StackState
    ) -> Started | None:
        found = self.alive.get(container_id)
        if found is None or found.gone.is_set():
            return None
        self.adopted.append(container_id)
        return Started(found, "", [], None, [])

    def forget(self, container_id: str) -> None:
        self.forgotten.append(container_id)

    def gone(self, container: Handle) -> None:
        assert isinstance(container, FakeContainer)
        container.gone.wait()

    def hold(
        self,
        held: Sequence[tuple[str, Started]],
        state: ss.StackState,
        listening: int,
        owner: tuple[int, int] | None,
        request: Mapping[str, object],
    ) -> None:
        assert request["names"] == state.order and request["previous"] is None
        self.holds.append([name for name, _ in held])

    def wait(self, container: Handle) -> int | None:
        assert isinstance(container, FakeContainer)
        if container.id in self.adopted:
            container.gone.wait()
            return None  # not a child: no exit code
        container.gone.wait()
        return container.code

    def signal(self, container: Handle, sig: int) -> None:
        assert isinstance(container, FakeContainer)
        self.signals.append((container.service, sig))
        container.exit(128 + sig)

    def ignores(self, container: Handle, sig: int) -> bool:
        return False

    def release(self, started: Started) -> None:
        pass

    def remove(self, container: Handle) -> None:
        self.removed.append(container.id)

    def health_check(self, container: Handle, check: HealthcheckSpec) -> tuple[bool, str]:
        assert isinstance(container, FakeContainer)
        results = self.health.get(container.service)
        ok = results.pop(0) if results else True
        return ok, "ok" if ok else "not yet"

    def ready_probe(
        self,
        container: Handle,
        probe: Ready,
        log_lines: Callable[[], Iterable[str]],
        started: float,
        alive: Callable[[], bool],
    ) -> str | None:
        return None

    def teardown(self, state: ss.StackState, failed: bool) -> None:
        self.torn_down = True

    def of(self, service: str) -> list[FakeContainer]:
        return [c for c in self.started if c.service == service]


@pytest.fixture
def running(envkit_home: Path) -> Iterator[Callable[..., Supervisor]]:
    """Start a supervisor over fakes and run it in a thread; stopped after the test."""
    held: list[tuple[Supervisor, threading.Thread]] = []

    def start(stack: Stack, ops: FakeOps, hold_after: float | None = None) -> Supervisor:
        names = stack.start_order()
        supervisor = Supervisor(
            stack,
            {n: "busybox:1" for n in names},
            names,
            ops=ops,
            stop_grace=1,
            hold_after=hold_after,
        )
        supervisor.start()
        thread = threading.Thread(target=supervisor.run, daemon=True)
        thread.start()
        held.append((supervisor, thread))
        return supervisor

    yield start
    for supervisor, thread in held:
        supervisor.request_stop()
        thread.join(5)
        supervisor.teardown()


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _ps(supervisor: Supervisor) -> ss.StackState:
    answer = control.request(supervisor.state.control_path, control.Ps())
    return ss.from_dict(answer["state"])


def _quick_health(retries: int) -> Healthcheck:
    return Healthcheck("true", interval=0.02, timeout=1, retries=retries)


# -- start and state -------------------------------------------------------------------------


def test_up_starts_in_order_and_records_every_service(
    running: Callable[..., Supervisor],
) -> None:
    db = Service("db", image="busybox:1", healthcheck=_quick_health(retries=5))
    web = Service("web", image="busybox:1", depends_on={db: "healthy"})
    ops = FakeOps(health={"db": [False, False, True]})
    supervisor = running(Stack("shop", services=[web, db]), ops)
    assert [c.service for c in ops.started] == ["db", "web"]
    state = _ps(supervisor)
    assert state.status == ss.RUNNING and state.order == ["db", "web"]
    assert state.services["db"].health == "healthy"
    assert state.services["web"].status == "running"
    assert state.services["web"].ports == ["127.0.0.1:8002->80/tcp"]
    assert ss.require("shop").services["db"].container == ops.of("db")[0].id


def test_a_dependency_that_turns_unhealthy_fails_up_and_tears_down(envkit_home: Path) -> None:
    db = Service("db", image="busybox:1", healthcheck=_quick_health(retries=2))
    web = Service("web", image="busybox:1", depends_on={db: "healthy"})
    ops = FakeOps(health={"db": [False, False, False]})
    stack = Stack("sick", services=[web, db])
    supervisor = Supervisor(stack, {"db": "x", "web": "x"}, ["db", "web"], ops=ops, stop_grace=1)
    with pytest.raises(DependencyError, match="web depends on db being healthy, but its health"):
        supervisor.start()
    assert [c.service for c in ops.started] == ["db"]
    assert ops.torn_down and ss.load("sick") is None
    assert ops.removed == [ops.of("db")[0].id]


def test_a_failed_start_is_the_error_of_up(envkit_home: Path) -> None:
    db = Service("db", image="busybox:1")
    web = Service("web", image="busybox:1", depends_on={db: "started"})
    ops = FakeOps(start_errors={"db": EnvkitError("host port 8000 is in use")})
    supervisor = Supervisor(
        Stack("busy", services=[web, db]), {"db": "x", "web": "x"}, ["db", "web"], ops=ops
    )
    with pytest.raises(EnvkitError, match="host port 8000 is in use"):
        supervisor.start()
    assert ops.started == []


# -- restarts -------------------------------------------------------------------------------


def test_on_failure_restarts_up_to_its_maximum(running: Callable[..., Supervisor]) -> None:
    job = Service("job", image="busybox:1", restart="on-failure:2")
    ops = FakeOps(exits={"job": [(0.05, 3), (0.01, 3), (0.01, 3)]})
    supervisor = running(Stack("jobs", services=[job]), ops)
    _until(lambda: _ps(supervisor).services["job"].status == "exited")
    record = _ps(supervisor).services["job"]
    assert record.restarts == 2 and record.exit_code == 3
    assert len(ops.of("job")) == 3
    # Each old container is removed when its successor starts.
    assert ops.removed == [c.id for c in ops.of("job")[:2]]


def test_a_clean_exit_is_not_restarted_on_failure(running: Callable[..., Supervisor]) -> None:
    job = Service("job", image="busybox:1", restart="on-failure")
    ops = FakeOps(exits={"job": [(0.05, 0)]})
    supervisor = running(Stack("jobs", services=[job]), ops)
    _until(lambda: _ps(supervisor).services["job"].status == "exited")
    time.sleep(0.3)
    assert len(ops.of("job")) == 1 and _ps(supervisor).services["job"].exit_code == 0


def test_always_restarts_with_a_growing_backoff(running: Callable[..., Supervisor]) -> None:
    web = Service("web", image="busybox:1", restart="always")
    ops = FakeOps(exits={"web": [(0.05, 0), (0.0, 0), (0.0, 0)]})
    supervisor = running(Stack("flaky", services=[web]), ops)
    started = time.monotonic()
    _until(lambda: len(ops.of("web")) == 4)
    # 100 ms + 200 ms + 400 ms of backoff at least between the four starts.
    assert time.monotonic() - started >= 0.7
    _until(lambda: _ps(supervisor).services["web"].restarts == 3)
    assert _ps(supervisor).services["web"].status == "running"


def test_stop_is_not_restarted_and_start_resets_the_count(
    running: Callable[..., Supervisor],
) -> None:
    web = Service("web", image="busybox:1", restart="always")
    ops = FakeOps(exits={"web": [(0.02, 1)]})
    supervisor = running(Stack("svc", services=[web]), ops)
    _until(lambda: _ps(supervisor).services["web"].restarts == 1)
    path = supervisor.state.control_path
    assert control.request(path, control.Stop(("web",)), timeout=10)["services"] == ["web"]
    assert ops.signals == [("web", signal.SIGTERM)]
    time.sleep(0.3)
    record = _ps(supervisor).services["web"]
    assert record.status == "stopped" and record.container == "" and len(ops.of("web")) == 2
    control.request(path, control.Start(), timeout=10)
    record = _ps(supervisor).services["web"]
    assert record.status == "running" and record.restarts == 0  # as `docker start`
    assert record.container == ops.of("web")[2].id


def test_restart_gives_a_new_container(running: Callable[..., Supervisor]) -> None:
    web = Service("web", image="busybox:1")
    ops = FakeOps()
    supervisor = running(Stack("svc", services=[web]), ops)
    first = ops.of("web")[0]
    control.request(supervisor.state.control_path, control.Restart(("web",)), timeout=10)
    assert first.gone.is_set() and first.id in ops.removed
    assert _ps(supervisor).services["web"].container == ops.of("web")[1].id


def test_unknown_service_names_the_ones_there_are(running: Callable[..., Supervisor]) -> None:
    supervisor = running(Stack("svc", services=[Service("web", image="busybox:1")]), FakeOps())
    with pytest.raises(EnvkitError, match="has no service 'api'") as caught:
        control.request(supervisor.state.control_path, control.Stop(("api",)))
    assert caught.value.hint == "services: web"


# -- replace ---------------------------------------------------------------------------------


def test_replace_recreates_only_what_changed(running: Callable[..., Supervisor]) -> None:
    keep = Service("keep", image="busybox:1")
    change = Service("change", image="busybox:1", env={"V": "1"})
    ops = FakeOps()
    supervisor = running(Stack("re", services=[keep, change]), ops)
    kept = ops.of("keep")[0]
    new = Stack(
        "re",
        services=[
            keep,
            Service("change", image="busybox:1", env={"V": "2"}),
            Service("added", image="busybox:1"),
        ],
    )
    request = control.Replace(
        specjson.encode(new),
        {"change": "busybox:1", "added": "busybox:1"},
        ("keep", "change", "added"),
    )
    answer = control.request(supervisor.state.control_path, request, timeout=10)
    assert answer["recreated"] == ["added", "change"] and answer["removed"] == []
    assert not kept.gone.is_set() and len(ops.of("change")) == 2
    assert supervisor.stack == new
    state = _ps(supervisor)
    assert state.services["change"].spec_key == ss.spec_key(new, "change", "busybox:1")
    answer = control.request(
        supervisor.state.control_path,
        control.Replace(specjson.encode(Stack("re", services=[keep])), {}, ("keep",)),
        timeout=10,
    )
    assert answer["recreated"] == [] and sorted(answer["removed"]) == ["added", "change"]
    assert sorted(_ps(supervisor).services) == ["keep"]


def test_replace_refuses_a_pickled_stack(running: Callable[..., Supervisor]) -> None:
    stack = Stack("re", services=[Service("web", image="busybox:1")])
    supervisor = running(stack, FakeOps())
    pickled = base64.b64encode(pickle.dumps(stack)).decode()
    payload = {"op": "replace", "stack": pickled, "images": {}, "services": []}
    with pytest.raises(EnvkitError, match="replace needs the 'stack' as a JSON object"):
        control.request(supervisor.state.control_path, payload)


def _encoded_with(**fields: object) -> dict[str, object]:
    data = specjson.encode(Stack("re", services=[Service("web", image="busybox:1")]))
    data["fields"].update(fields)
    return dict(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "os.system", "fields": {}}, "stack: 'os.system' is not a spec class"),
        (
            {"type": "stack.Stack", "fields": {"name": "re"}},
            "stack: stack.Stack takes fields name, services, volumes, networks, base_dir, got name",
        ),
        ({"__reduce__": ["os.system", ["true"]]}, "stack: expected a spec object"),
        (_encoded_with(name=["re"]), "stack.name: unexpected list in spec data"),
        (_encoded_with(base_dir={"path": 1}), "stack.base_dir: expected a spec object"),
    ],
)
def test_replace_refuses_what_is_not_spec_data(
    running: Callable[..., Supervisor], data: object, message: str
) -> None:
    supervisor = running(Stack("re", services=[Service("web", image="busybox:1")]), FakeOps())
    payload = {"op": "replace", "stack": data, "images": {}, "services": []}
    with pytest.raises(EnvkitError) as caught:
        control.request(supervisor.state.control_path, payload)
    assert caught.value.message.startswith(message)


def test_replace_refuses_another_stack(running: Callable[..., Supervisor]) -> None:
    supervisor = running(Stack("re", services=[Service("web", image="busybox:1")]), FakeOps())
    other = Stack("other", services=[Service("web", image="busybox:1")])
    request = control.Replace(specjson.encode(other), {"web": "busybox:1"}, ("web",))
    with pytest.raises(EnvkitError, match="expected a Stack named 're'"):
        control.request(supervisor.state.control_path, request)


# -- the control socket ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"op": "format-disk"}, "unknown request 'format-disk'"),
        ({"op": "stop", "services": "web"}, "'services' must be a list of strings"),
        ({"op": "logs", "follow": "yes"}, "'follow' must be true or false"),
        ({"op": "exec", "cmd": ["sh"]}, "exec needs a 'service'"),
        ({"op": "exec", "service": "web", "cmd": ["sh"], "env": {"A": 1}}, "'env' must map"),
        ({"op": "down", "grace": -1}, "'grace' must be seconds, 0 or more"),
        ({"op": "down", "grace": "10"}, "'grace' must be seconds, 0 or more"),
        ({"op": "down", "grace": True}, "'grace' must be seconds, 0 or more"),
        ({"op": "down", "grace": float("inf")}, "'grace' must be seconds, 0 or more"),
    ],
)
def test_bad_requests_get_one_message(
    running: Callable[..., Supervisor], payload: dict[str, object], message: str
) -> None:
    supervisor = running(Stack("ctl", services=[Service("web", image="busybox:1")]), FakeOps())
    with pytest.raises(EnvkitError, match=message):
        control.request(supervisor.state.control_path, payload)


def test_every_request_class_round_trips_through_its_wire_form() -> None:
    requests: list[control.Request] = [
        control.Ps(),
        control.Logs(("web",), follow=True),
        control.Exec("web", ("sh", "-c", "true"), {"A": "1"}, "/tmp", "nobody"),
        control.Down(),
        control.Down(0.0),
        control.Stop(("a", "b")),
        control.Start(),
        control.Restart(("a",)),
        control.Replace({"type": "stack.Stack", "fields": {}}, {"a": "img"}, ("a",)),
    ]
    import json

    for request in requests:
        wire = json.loads(json.dumps(request.to_wire()))
        assert control.parse(wire) == request
    assert sorted(control.REQUESTS) == sorted({r.op for r in requests})


def test_the_cli_forms_of_requests_parse() -> None:
    """The dict forms envkit/cli/stack_cmds.py sends keep parsing."""
    assert control.parse({"op": "ps"}) == control.Ps()
    assert control.parse({"op": "logs", "services": []}) == control.Logs()
    assert control.parse({"op": "logs", "services": ["a"], "follow": True}) == control.Logs(
        ("a",), True
    )
    exec_: dict[str, object] = {
        "op": "exec",
        "service": "db",
        "cmd": ["psql"],
        "env": {},
        "workdir": None,
        "user": None,
    }
    assert control.parse(exec_) == control.Exec("db", ("psql",))


def test_down_over_the_socket_stops_the_loop(envkit_home: Path) -> None:
    ops = FakeOps()
    stack = Stack("dn", services=[Service("web", image="busybox:1")])
    supervisor = Supervisor(stack, {"web": "x"}, ["web"], ops=ops, stop_grace=1)
    supervisor.start()
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    answer = control.request(supervisor.state.control_path, control.Down())
    assert answer["pid"] > 0
    thread.join(5)
    assert not thread.is_alive()
    supervisor.teardown()
    assert ops.of("web")[0].gone.is_set() and ops.torn_down
    assert ss.load("dn") is None and not supervisor.state.control_path.exists()


class DeafToTerm(FakeOps):
    """Containers whose pid 1 ignores SIGTERM (as ``sleep`` does): only SIGKILL ends them."""

    def signal(self, container: Handle, sig: int) -> None:
        assert isinstance(container, FakeContainer)
        self.signals.append((container.service, sig))
        if sig == signal.SIGKILL:
            container.exit(128 + sig)


def test_down_with_a_grace_of_0_kills_at_once(envkit_home: Path) -> None:
    """compose's ``down -t 0``: the grace the request names replaces the supervisor's
    own (here an hour), so the teardown does not wait for the SIGTERM to work."""

    ops = DeafToTerm()
    stack = Stack("dk", services=[Service("web", image="busybox:1")])
    supervisor = Supervisor(stack, {"web": "x"}, ["web"], ops=ops, stop_grace=3600)
    supervisor.start()
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    control.request(supervisor.state.control_path, control.Down(0))
    thread.join(5)
    assert supervisor.stop_grace == 0
    start = time.monotonic()
    supervisor.teardown()
    assert time.monotonic() - start < 30
    assert ops.signals == [("web", signal.SIGTERM), ("web", signal.SIGKILL)]
    assert ops.of("web")[0].gone.is_set()


def test_a_service_stop_grace_period_is_its_own_and_down_t_overrides_it(
    envkit_home: Path,
) -> None:
    """compose's ``stop_grace_period``: each service waits its own grace (here 0.2 s
    against the supervisor's default of an hour); the answer to ``down`` names the
    longest, which the caller waits for; ``down -t`` replaces every service's."""
    ops = DeafToTerm()
    quick = Service("quick", image="busybox:1", stop_grace_period=0.2)
    slow = Service("slow", image="busybox:1", stop_grace_period=90)
    stack = Stack("gp", services=[quick, slow])
    supervisor = Supervisor(stack, {"quick": "x", "slow": "x"}, ["quick", "slow"], ops=ops)
    assert (supervisor.grace("quick"), supervisor.grace("slow")) == (0.2, 90)
    supervisor.start()
    start = time.monotonic()
    supervisor._stop_instances(["quick"])
    assert time.monotonic() - start < 30
    assert ops.signals == [("quick", signal.SIGTERM), ("quick", signal.SIGKILL)]
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    answer = control.request(supervisor.state.control_path, control.Down())
    assert answer["grace"] == 90
    thread.join(5)
    supervisor.grace_given = 3  # what `down -t 3` sets
    assert (supervisor.grace("quick"), supervisor.grace("slow")) == (3, 3)
    supervisor.grace_given = 0
    supervisor.teardown()
    assert ops.of("slow")[0].gone.is_set()


def test_a_pid_1_seen_ignoring_its_stop_signal_during_the_grace_is_killed_then(
    envkit_home: Path,
) -> None:
    """The stop signal went while pid 1 was busy (not seen ignoring it); a later look
    sees it ignore the signal: SIGKILL then, not after the whole grace period."""

    class BusyThenDeaf(DeafToTerm):
        looks = 0

        def ignores(self, container: Handle, sig: int) -> bool:
            BusyThenDeaf.looks += 1
            return BusyThenDeaf.looks >= 3  # busy at the first looks

    ops = BusyThenDeaf()
    stack = Stack("bz", services=[Service("web", image="busybox:1")])
    supervisor = Supervisor(stack, {"web": "x"}, ["web"], ops=ops, stop_grace=3600)
    supervisor.start()
    start = time.monotonic()
    supervisor.teardown()
    assert time.monotonic() - start < 30
    assert ops.signals == [("web", signal.SIGTERM), ("web", signal.SIGKILL)]
    assert BusyThenDeaf.looks == 3


# -- taking over from a lost supervisor ---------------------------------------------------


def _left_running(ops: FakeOps, stack: str, service: str, n: int) -> FakeContainer:
    container = FakeContainer(f"{n:064x}", f"{stack}-{service}-1", 20_000 + n, service)
    ops.alive[container.id] = container
    return container


def test_a_new_supervisor_adopts_what_a_lost_one_left(running: Callable[..., Supervisor]) -> None:
    from envkit.stack import recovery

    web = Service("web", image="busybox:1", restart="always")
    job = Service("job", image="busybox:1", restart="on-failure")
    off = Service("off", image="busybox:1", restart="unless-stopped")
    back = Service("back", image="busybox:1", restart="always")
    plain = Service("plain", image="busybox:1")
    stack = Stack("lost", services=[web, job, off, back, plain])
    ops = FakeOps()
    alive_web = _left_running(ops, "lost", "web", 901)
    alive_gone = _left_running(ops, "lost", "gone", 902)

    def service(status: str, container: str = "", restarts: int = 0) -> ss.ServiceState:
        return ss.ServiceState(
            container=container,
            status=status,
            restarts=restarts,
            image_id="busybox:1",
            spec_key="",
            started_at="2026-01-01T00:00:00Z",
            ports=["127.0.0.1:9000->80/tcp"],
        )

    previous = ss.StackState(
        name="lost",
        supervisor=999_999_999,  # not alive
        order=["web", "job", "off", "back", "plain", "gone"],
        services={
            "web": service("running", alive_web.id, restarts=4),
            "job": service("running", "f" * 64),  # exited while nobody watched
            "off": service("stopped"),
            "back": service("stopped"),
            "plain": service("running", "e" * 64),
            "gone": service("running", alive_gone.id),
        },
    )
    for name in ("web", "job", "off", "back", "plain"):
        previous.services[name].spec_key = ss.spec_key(stack, name, "busybox:1")
    assert recovery.as_seen(previous).services["job"].status == "exited"

    names = stack.start_order()
    supervisor = Supervisor(
        stack, {n: "busybox:1" for n in names}, names, ops=ops, stop_grace=1, previous=previous
    )
    supervisor.start()
    run_thread = threading.Thread(target=supervisor.run, daemon=True)
    run_thread.start()
    try:
        state = _ps(supervisor)
        assert state.services["web"].container == alive_web.id  # adopted, not restarted
        assert state.services["web"].restarts == 4
        assert state.services["web"].ports == ["127.0.0.1:9000->80/tcp"]
        assert [c.service for c in ops.started] == ["back", "job"]  # start order: by name
        assert state.services["job"].status == "running"
        assert state.services["off"].status == "stopped"  # unless-stopped stays stopped
        assert state.services["back"].status == "running"  # always comes back
        plain_state = state.services["plain"]
        assert plain_state.status == "exited" and plain_state.exit_code is None
        assert recovery.status_text(plain_state) == recovery.LOST
        assert alive_gone.gone.is_set() and alive_gone.id in ops.removed
        assert "gone" not in state.services
        assert sorted(ops.forgotten) == sorted(["f" * 64, "e" * 64])
        # The adopted container exits: no code; `always` restarts it.
        alive_web.exit(0)
        _until(lambda: len(ops.of("web")) == 1)
        _until(lambda: _ps(supervisor).services["web"].status == "running")
        assert _ps(supervisor).services["web"].restarts == 5
    finally:
        supervisor.request_stop()
        run_thread.join(10)  # as the daemon: run returns before teardown removes the state
        supervisor.teardown()


def test_an_adopted_container_whose_service_changed_is_replaced(envkit_home: Path) -> None:
    stack = Stack("chg", services=[Service("web", image="busybox:1", env={"V": "2"})])
    ops = FakeOps()
    old = _left_running(ops, "chg", "web", 903)
    previous = ss.StackState(
        name="chg",
        order=["web"],
        services={"web": ss.ServiceState(container=old.id, status="running", spec_key="old")},
    )
    supervisor = Supervisor(stack, {"web": "busybox:1"}, ["web"], ops=ops, previous=previous)
    supervisor.start()
    try:
        assert old.gone.is_set() and ops.signals[0] == ("web", signal.SIGTERM)
        assert supervisor.state.services["web"].container == ops.of("web")[0].id
    finally:
        supervisor.teardown()


def test_a_resumed_supervisor_never_records_its_stack_as_starting(
    envkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back from its hold phase, the supervisor took its stack over with the record
    saying "starting" (~0.1 s): `envkit ls`, which reads the record, showed it."""
    stack = Stack("woke", services=[Service("web", image="busybox:1")])
    ops = FakeOps()
    old = _left_running(ops, "woke", "web", 904)
    previous = ss.StackState(
        name="woke",
        order=["web"],
        status=ss.RUNNING,
        services={
            "web": ss.ServiceState(
                container=old.id,
                status="running",
                image_id="busybox:1",
                spec_key=ss.spec_key(stack, "web", "busybox:1"),
            )
        },
    )
    saved: list[str] = []
    real_save = ss.StackState.save

    def save(self: ss.StackState) -> None:
        saved.append(self.status)
        real_save(self)

    monkeypatch.setattr(ss.StackState, "save", save)
    # as the supervisor binds it: a pytest tmp path can pass the 108 bytes of sun_path
    listener = control._bind(ss.stack_dir("woke") / "control.sock")
    supervisor = Supervisor(
        stack,
        {"web": "busybox:1"},
        ["web"],
        ops=ops,
        previous=previous,
        listening=listener.detach(),
    )
    supervisor.start()
    try:
        assert saved and ss.STARTING not in saved, saved
        assert supervisor.state.services["web"].container == old.id
    finally:
        supervisor.teardown()


# -- the hold phase ----------------------------------------------------------------------------


def test_an_idle_stack_holds_its_running_containers_and_still_answers(
    running: Callable[..., Supervisor],
) -> None:
    ops = FakeOps(exits={"job": [(0.0, 0)]})
    stack = Stack(
        "quiet",
        services=[Service("web", image="busybox:1"), Service("job", image="busybox:1")],
    )
    supervisor = running(stack, ops, hold_after=0.05)
    _until(lambda: len(ops.holds) >= 2)
    # The job exited (no restart): only web's container is held. The fake cannot exec,
    # so the supervisor goes on, and its control socket answers again.
    assert ops.holds[0] == ["web"]
    assert _ps(supervisor).services["web"].status == "running"


def test_a_stack_with_a_health_check_never_holds(running: Callable[..., Supervisor]) -> None:
    ops = FakeOps()
    checked = Service("db", image="busybox:1", healthcheck=_quick_health(retries=3))
    running(Stack("checked", services=[checked]), ops, hold_after=0.0)
    time.sleep(0.5)
    assert ops.holds == []


def test_a_due_restart_keeps_the_supervisor_from_holding(
    running: Callable[..., Supervisor],
) -> None:
    ops = FakeOps(exits={"flaky": [(0.0, 1)] * 50})
    flaky = Service("flaky", image="busybox:1", restart="always")
    running(Stack("flaky", services=[flaky]), ops, hold_after=0.0)
    _until(lambda: len(ops.of("flaky")) >= 4)
    # Each hold decision sees the container that runs now; none while one is due.
    for held in ops.holds:
        assert held in ([], ["flaky"])


def test_no_hold_while_a_control_connection_is_answered(
    running: Callable[..., Supervisor],
) -> None:
    ops = FakeOps()
    supervisor = running(Stack("busy", services=[Service("web", image="busybox:1")]), ops)
    follow = control.connect(supervisor.state.control_path)
    try:
        follow.sendall(b'{"op": "logs", "services": [], "follow": true}\n')
        time.sleep(0.2)
        server = supervisor._server
        assert server is not None
        assert server.pause() is False  # refused, and it accepts again
        assert _ps(supervisor).status == ss.RUNNING
    finally:
        follow.close()
    _until(lambda: server.pause())
    server.start()
    assert _ps(supervisor).status == ss.RUNNING


def _adopting(ops: FakeOps, backoff: float, started_at: str) -> tuple[Supervisor, FakeContainer]:
    """A supervisor that takes over a crash-looping ``always`` service whose container
    a lost (or held) supervisor left running."""
    stack = Stack("loop", services=[Service("crashy", image="busybox:1", restart="always")])
    left = _left_running(ops, "loop", "crashy", 903)
    record = ss.ServiceState(
        container=left.id,
        status="running",
        restarts=7,
        backoff=backoff,
        image_id="busybox:1",
        spec_key=ss.spec_key(stack, "crashy", "busybox:1"),
        started_at=started_at,
    )
    previous = ss.StackState(
        name="loop", supervisor=999_999_999, order=["crashy"], services={"crashy": record}
    )
    supervisor = Supervisor(
        stack, {"crashy": "busybox:1"}, ["crashy"], ops=ops, stop_grace=1, previous=previous
    )
    supervisor.start()
    return supervisor, left


def test_a_taken_over_crash_loop_keeps_its_backoff(envkit_home: Path) -> None:
    """docker's backoff doubles across a take-over (after kill -9, or the hold phase
    of an idle stack): a crash loop does not restart every 100 ms again."""
    ops = FakeOps()
    now = time.time()
    supervisor, left = _adopting(ops, 3.2, _rfc3339(now - 1))
    try:
        left.exit(1)
        _until(lambda: supervisor._services["crashy"].restart_at is not None or _drain(supervisor))
        svc = supervisor._services["crashy"]
        assert svc.restarts.delay == 6.4
        assert supervisor.state.services["crashy"].backoff == 6.4
    finally:
        supervisor.teardown()


def test_an_adopted_container_that_ran_long_restarts_a_new_backoff(envkit_home: Path) -> None:
    """How long it ran counts from its real start (``started_at``), not the take-over."""
    ops = FakeOps()
    supervisor, left = _adopting(ops, 3.2, _rfc3339(time.time() - 30))
    try:
        left.exit(1)
        _until(lambda: supervisor._services["crashy"].restart_at is not None or _drain(supervisor))
        assert supervisor._services["crashy"].restarts.delay == 0.1
    finally:
        supervisor.teardown()


def _drain(supervisor: Supervisor) -> bool:
    supervisor.wait_event(0.01)
    return False


def _rfc3339(when: float) -> str:
    whole = int(when)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((when % 1) * 1e9):09d}Z"
