"""50 tests that each need a fresh PostgreSQL database: envkit's ``database_fixture``
(one server per session, a template clone per test) beside testcontainers-python's
``PostgresContainer`` (a container per test, as its docs show for isolation) driven
through podman's Docker-compatible API socket (``podman system service``), on the same
image: the envkit postgres recipe's, saved from envkit's store and loaded into podman.

Targets: first ready database <= 2 s with the image cached; each further fresh database
< 100 ms; the whole run >= 10x faster than testcontainers. ENVKIT_BENCH_HOME keeps the
built image between runs (the first build bootstraps Debian, about a minute).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.bench_run import _unmount_below
from tests.benchmarks.common import Result, have, private_podman

TESTS = int(os.environ.get("ENVKIT_BENCH_TESTS", "50"))
CONFTEST = """
import json, os
from envkit.recipes import postgres
from envkit.testing import database_fixture, service_fixture

pg = service_fixture(postgres(version=15), scope="session")
postgres_db = database_fixture(pg)
TIMES = []

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        TIMES.append((report.when, report.duration))

def pytest_sessionfinish(session):
    with open(os.environ["BENCH_TIMES"], "w") as f:
        json.dump(TIMES, f)
"""
TEST = """
import psycopg, pytest

@pytest.mark.parametrize("n", range({tests}))
def test_fresh(postgres_db, n):
    with psycopg.connect(postgres_db.url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (%s)", [n])
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
"""
TC_TEST = """
import os, psycopg, pytest
from docker.types import Ulimit
from testcontainers.postgres import PostgresContainer

@pytest.fixture
def postgres_db():
    pg = PostgresContainer(os.environ["BENCH_IMAGE"], username="postgres",
                           password="postgres", dbname="postgres", driver=None)
    pg.with_command(os.environ["BENCH_COMMAND"])
    # podman raises rlimits above this host's hard limits unless told (HOST-NOTES).
    nofile = [int(v) for v in os.environ["BENCH_NOFILE"].split(":")]
    pg.with_kwargs(user="postgres", ulimits=[Ulimit(name="nproc", soft=1024, hard=1024),
                                             Ulimit(name="nofile", soft=nofile[0], hard=nofile[1])])
    with pg:
        yield pg.get_connection_url()

@pytest.mark.parametrize("n", range({tests}))
def test_fresh(postgres_db, n):
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (%s)", [n])
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
"""


def _pytest(project: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-1500:] + done.stderr[-500:])
    return elapsed


def _envkit(base: Path, home: Path) -> tuple[float, float, float, float]:
    """Whole run, first ready database, median further setup, median teardown."""
    env = {**os.environ, "ENVKIT_HOME": str(home), "BENCH_TIMES": str(base / "times.json")}
    _built_id(home)  # cached after the first time: not timed
    project = base / "envkit-suite"
    project.mkdir()
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_fresh.py").write_text(TEST.format(tests=TESTS))
    _pytest(project, env)  # warm-up: snapshots, network holder
    whole = _pytest(project, env)
    times = json.loads((base / "times.json").read_text())
    setups = [d for when, d in times if when == "setup"]
    teardowns = [d for when, d in times if when == "teardown"]
    return whole, setups[0], statistics.median(setups[1:]), statistics.median(teardowns[:-1])


def _testcontainers(base: Path, home: Path) -> tuple[float | None, str]:
    """The same suite with a PostgresContainer per test, through podman's API socket."""
    if not (have("podman") and have("runc")):
        return None, "podman or runc not installed"
    from envkit.recipes import postgres
    from envkit.recipes.postgres import DATA_MOUNT
    from envkit.recipes.recipe import shell_quote

    script = (postgres().service.command or ("",))[-1]
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    image_id = _built_id(home)
    archive = base / "pg.tar"
    subprocess.run(
        [sys.executable, "-m", "envkit", "save", "-o", str(archive), image_id],
        env=env,
        check=True,
        capture_output=True,
    )
    podman = private_podman(base)
    loaded = subprocess.run(
        [*podman, "load", "-q", "-i", str(archive)], check=True, capture_output=True, text=True
    )
    image = loaded.stdout.strip().rsplit(" ", 1)[-1]
    socket = base / "podman.sock"
    service = subprocess.Popen(
        [*podman, "system", "service", "--time=0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        project = base / "tc-suite"
        project.mkdir()
        (project / "test_fresh.py").write_text(TC_TEST.format(tests=TESTS))
        tc_env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{socket}",
            # Ryuk, testcontainers' reaper, is an image from Docker Hub: no registry here.
            "TESTCONTAINERS_RYUK_DISABLED": "true",
            # This host is itself a container: testcontainers would look for a bridge
            # network in podman's container list (no HostConfig there) instead.
            "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
            "BENCH_IMAGE": image,
            "BENCH_NOFILE": ":".join(map(str, resource.getrlimit(resource.RLIMIT_NOFILE))),
            # testcontainers sets tmpfs itself: the data dir is made in the container.
            "BENCH_COMMAND": shell_quote(["sh", "-c", f"mkdir -p {DATA_MOUNT} && {script}"]),
        }
        try:
            return _pytest(project, tc_env), ""
        except RuntimeError as exc:
            return None, f"testcontainers failed: {_first_error(str(exc))}"
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(20)
        subprocess.run([*podman, "rm", "-af", "-t", "0"], capture_output=True, check=False)


def _first_error(output: str) -> str:
    """The first line of a failed run's output that names an error."""
    lines = output.splitlines()
    for marker in ("Server Error", "Error:", "Error", "error"):
        for line in lines:
            if marker in line:
                return line.strip()[:300]
    return output.strip()[-300:]


def _built_id(home: Path) -> str:
    from envkit.recipes import postgres

    saved = os.environ.get("ENVKIT_HOME")
    os.environ["ENVKIT_HOME"] = str(home)
    try:
        return postgres().service.image.build().image_id
    finally:
        if saved is None:
            os.environ.pop("ENVKIT_HOME", None)
        else:
            os.environ["ENVKIT_HOME"] = saved


def main() -> list[Result]:
    with tempfile.TemporaryDirectory(
        prefix="envkit-bench-testing-", ignore_cleanup_errors=True
    ) as t:
        base = Path(t)
        base.chmod(0o755)
        home = Path(os.environ.get("ENVKIT_BENCH_HOME") or base / "home")
        whole, first, fresh, drop = _envkit(base, home)
        tc, note = _testcontainers(base, home)
        _unmount_below(base)
    return [
        Result(
            f"testing: {TESTS} tests, fresh PostgreSQL db each",
            whole,
            "testcontainers",
            tc,
            note or "target: envkit >= 10x faster",
        ),
        Result("testing: first ready database (image cached)", first, note="target <= 2 s"),
        Result("testing: each further fresh database (setup)", fresh, note="target < 100 ms"),
        Result("testing: drop after a test (teardown)", drop),
    ]


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
