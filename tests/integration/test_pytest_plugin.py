"""The envkit pytest plugin seen from a user's test suite (pytester): service and stack
fixtures in their scopes, a service that never gets ready, --envkit-keep, pytest-xdist,
and nothing left behind after a run, even one killed with SIGKILL. The services are a
tiny busybox httpd so that every run takes a second or two."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Imported here, before any inline pytester run: modules first imported inside such a run
# are dropped from sys.modules after it, and the next run's Service would then be another
# class than the one envkit's plugin (loaded once) checks against.
import envkit.spec.stack  # noqa: F401
from envkit.stack import state as ss
from tests import images
from tests.integration import homes

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.rootless

APPLETS = (*images.APPLETS, "httpd")
CONFTEST = """
from envkit import Healthcheck, Service
from envkit.testing import service_fixture, stack_fixture

def web(name="web", **extra):
    script = "echo hello-$HOSTNAME > /www/index.html; exec httpd -f -p 8080 -h /www"
    return Service(name, init=True, image="busybox:1", command=["sh", "-c", script],
                   ports={0: 8080},
                   healthcheck=Healthcheck(["test", "-f", "/www/index.html"], interval=0.05),
                   **extra)

web_session = service_fixture(web(), scope="session")
web_each = service_fixture(web(), scope="function")
pair = stack_fixture([web("front"), web("back")], scope="module")
"""
FETCH = """
import json, os, urllib.request

def fetch(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()

def record(**values):
    with open(os.environ["RECORD"], "a") as f:
        f.write(json.dumps(values) + "\\n")
"""


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("plugin")
    layer = images.layer_tar(
        {
            "bin/busybox": images.BUSYBOX.read_bytes(),
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
            "etc/group": b"root:x:0:\n",
        },
        dirs=("dev", "proc", "sys", "tmp", "root", "etc", "www", "run"),
        symlinks={f"bin/{a}": "busybox" for a in APPLETS},
        executable=("bin/busybox",),
    )
    return homes.loaded_home(work, [layer], "busybox:1")


@pytest.fixture
def suite(
    pytester: pytest.Pytester, loaded_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.Pytester]:
    """A user's test directory with the busybox conftest; checks nothing is left."""
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    monkeypatch.setenv("RECORD", str(pytester.path / "record.jsonl"))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(fetch=FETCH)
    yield pytester
    from envkit.stack import down

    left = [s.name for s in ss.all_stacks()]
    for name in left:
        down(name, volumes=True)
    assert left == [], "a stack outlived its pytest run"
    assert leftovers() == []


def leftovers() -> list[str]:
    """Stacks, containers and volumes of the current ENVKIT_HOME."""
    from envkit import settings
    from envkit.runtime import state

    found = [f"stack {s.name}" for s in ss.all_stacks()]
    found += [f"container {s.name}" for s in state.all_states()]
    volumes = settings.home() / "volumes"
    found += [f"volume {p.name}" for p in volumes.iterdir()] if volumes.is_dir() else []
    return found


def records(pytester: pytest.Pytester) -> list[dict[str, object]]:
    path = pytester.path / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_service_and_stack_fixtures_in_their_scopes(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_scopes="""
        from fetch import fetch, record

        def test_one(web_session, web_each):
            assert fetch(web_session.port(8080)).startswith("hello-")
            record(session=web_session.stack, each=web_each.stack)

        def test_two(web_session, web_each, pair):
            assert fetch(web_each.port(8080)).startswith("hello-")
            assert fetch(pair["front"].port(8080)) != fetch(pair["back"].port(8080))
            assert web_session.exec(["cat", "/www/index.html"]).output.startswith("hello-")
            record(session=web_session.stack, each=web_each.stack, stack=pair.name)
        """
    )
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    first, second = records(suite)
    assert first["session"] == second["session"]
    assert first["each"] != second["each"]
    assert str(second["stack"]).startswith("pt-pair-main-")


def test_a_service_never_ready_fails_with_its_check_output_and_logs(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        test_broken="""
        from envkit import Healthcheck, Service
        from envkit.testing import service_fixture

        broken = service_fixture(Service("broken", init=True, image="busybox:1",
            command=["sh", "-c", "echo log-line-7d1f; exec sleep 60"],
            healthcheck=Healthcheck(["sh", "-c", "echo probe-says-no; false"],
                                    interval=0.05, retries=3),
        ))

        def test_uses_it(broken):
            pass
        """
    )
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "envkit fixture 'broken' could not start" in text
    assert "probe-says-no" in text and "log-line-7d1f" in text
    assert "Traceback" not in text and "During handling" not in text


def test_keep_leaves_a_failing_runs_services_up_and_says_how_to_reach_them(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        test_keep="""
        from fetch import record

        def test_fails(web_session):
            record(stack=web_session.stack, port=web_session.port(8080))
            assert False, "on purpose"
        """
    )
    result = suite.runpytest("-p", "no:cacheprovider", "--envkit-keep")
    result.assert_outcomes(failed=1)
    (seen,) = records(suite)
    text = result.stdout.str()
    assert "services kept up (--envkit-keep)" in text
    assert f"127.0.0.1:{seen['port']}" in text
    assert f"envkit down -v -p {seen['stack']}" in text
    assert ss.load(str(seen["stack"])) is not None  # still up after pytest finished
    from envkit.stack import down

    assert down(str(seen["stack"]), volumes=True)


def test_keep_from_the_ini_file_downs_a_passing_runs_services(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nenvkit_keep = true\n")
    suite.makepyfile(
        test_pass="""
        def test_passes(web_session):
            assert web_session.port(8080) > 0
        """
    )
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "kept up" not in result.stdout.str()
    assert ss.all_stacks() == []


def test_xdist_workers_get_their_own_services(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    suite.makepyfile(
        test_par="""
        import os, pytest
        from fetch import fetch, record

        @pytest.mark.parametrize("n", range(4))
        def test_each(web_session, n):
            assert fetch(web_session.port(8080)).startswith("hello-")
            record(worker=os.environ["PYTEST_XDIST_WORKER"], stack=web_session.stack,
                   port=web_session.port(8080))
        """
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "load")
    result.assert_outcomes(passed=4)
    seen = records(suite)
    by_worker = {r["worker"]: (r["stack"], r["port"]) for r in seen}
    assert len(by_worker) == 2
    stacks = {stack for stack, _ in by_worker.values()}
    ports = {port for _, port in by_worker.values()}
    assert len(stacks) == 2 and len(ports) == 2
    for worker, (stack, _) in by_worker.items():
        assert f"-{worker}-" in str(stack)


def test_nothing_outlives_a_run_killed_with_sigkill(suite: pytest.Pytester) -> None:
    ready = suite.path / "ready"
    suite.makepyfile(
        test_hang=f"""
        import time
        from pathlib import Path

        def test_hangs(web_session, pair):
            Path({str(ready)!r}).write_text(web_session.stack)
            time.sleep(120)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite.path)],
        cwd=suite.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(ready.exists, timeout=60)
        assert len(ss.all_stacks()) == 2
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    wait_for(lambda: leftovers() == [], timeout=30)


def test_plugin_registered_with_its_options(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--help")
    text = result.stdout.str()
    for option in ("--envkit-keep", "--envkit-home", "--envkit-timeout"):
        assert option in text
    assert "envkit_keep (bool)" in text
