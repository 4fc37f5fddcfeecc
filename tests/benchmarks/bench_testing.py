"""A user's suite of 21 tests that each need a fresh PostgreSQL database, four ways, in
one run:

* envkit: ``database_fixture(service_fixture(postgres(version=15)))``, one server per
  session, databases cloned ahead in the background (envkit/testing/databases.py);
* pytest-postgresql: its ``postgresql`` fixture on Debian's PostgreSQL 15 on the host
  (``postgresql_proc`` runs initdb and pg_ctl; a database per test from its template),
  no container at all. PostgreSQL refuses to run as root, so as root this suite runs as
  the ``postgres`` user; its data lives on /dev/shm (tmpfs), as envkit's does;
* testcontainers-python, its best pattern: one ``PostgresContainer`` per session and a
  ``CREATE DATABASE`` per test (dropped after), through podman's Docker-compatible API
  socket (``podman system service``);
* testcontainers-python, a container per test (as its docs show for isolation).

The containers of both testcontainers suites run the envkit recipe's image (saved from
envkit's store and loaded into podman), so every tool starts the same server. Each suite
is a whole ``pytest`` run, interpreter start included, after one untimed warm-up run
(envkit's and pytest-postgresql's: the median of :data:`RUNS` runs, testcontainers'
session suite of 3), with only its own tool's pytest plugin loaded
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` and ``-p``), as in a project that uses that tool:
the dev venv also holds hypothesis, whose plugin alone takes 0.3-0.6 s to import here,
and every suite would pay for it.

Targets (issue 21): envkit >= 4x faster than the session pattern and >= 40x faster than
a container per test, within 1.5x of pytest-postgresql; each further database's setup
<= 5 ms (pytest's setup duration); the first database (the first test's setup: start
of the server included, image cached) <= 0.5 s. ENVKIT_BENCH_HOME keeps the built image
between runs (the first build bootstraps Debian, about a minute).
"""

from __future__ import annotations

import json
import os
import pwd
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.bench_run import _unmount_below
from tests.benchmarks.common import Result, have, private_podman

TESTS = int(os.environ.get("ENVKIT_BENCH_TESTS", "21"))
#: Timed runs of the second-long suites (envkit's, pytest-postgresql's): their medians.
#: testcontainers' session suite (4-7 s from run to run here) takes the median of 3, its
#: container-per-test suite (42-63 s) one run.
RUNS = 5
PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"

#: Records pytest's setup and teardown durations of every test (all suites).
TIMES_PLUGIN = """
import json, os

TIMES = []

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        TIMES.append((report.when, report.duration))

def pytest_sessionfinish(session):
    with open(os.environ["BENCH_TIMES"], "w") as f:
        json.dump(TIMES, f)
"""
CONFTEST = """
from envkit.recipes import postgres
from envkit.testing import database_fixture, service_fixture

pg = service_fixture(postgres(version=15), scope="session")
postgres_db = database_fixture(pg)
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
PPG_TEST = """
import pytest

@pytest.mark.parametrize("n", range({tests}))
def test_fresh(postgresql, n):
    postgresql.execute("CREATE TABLE t (x int)")
    postgresql.execute("INSERT INTO t VALUES (%s)", [n])
    assert postgresql.execute("SELECT count(*) FROM t").fetchone() == (1,)
    postgresql.commit()
"""
TC_CONTAINER = """
import os, psycopg, pytest
from docker.types import Ulimit
from testcontainers.postgres import PostgresContainer

def container():
    pg = PostgresContainer(os.environ["BENCH_IMAGE"], username="postgres",
                           password="postgres", dbname="postgres", driver=None)
    pg.with_command(os.environ["BENCH_COMMAND"])
    # podman raises rlimits above this host's hard limits unless told (HOST-NOTES).
    nofile = [int(v) for v in os.environ["BENCH_NOFILE"].split(":")]
    pg.with_kwargs(user="postgres", ulimits=[Ulimit(name="nproc", soft=1024, hard=1024),
                                             Ulimit(name="nofile", soft=nofile[0], hard=nofile[1])])
    return pg
"""
TC_PER_TEST = (
    TC_CONTAINER
    + """
@pytest.fixture
def postgres_db():
    with container() as pg:
        yield pg.get_connection_url()
"""
)
TC_SESSION = (
    TC_CONTAINER
    + """
import itertools
COUNTER = itertools.count()

@pytest.fixture(scope="session")
def server():
    with container() as pg:
        yield pg

@pytest.fixture
def postgres_db(server):
    name = f"test_{next(COUNTER)}"
    admin = server.get_connection_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
"""
)
TC_TEST = """
import psycopg, pytest

@pytest.mark.parametrize("n", range({tests}))
def test_fresh(postgres_db, n):
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (%s)", [n])
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
"""

Figures = tuple[float, float, float, float]
"""Whole run, first test's setup, median further setup, median teardown (seconds)."""


def _suite(project: Path, files: dict[str, str]) -> None:
    project.mkdir(parents=True)
    (project / "bench_times.py").write_text(TIMES_PLUGIN)
    for name, text in files.items():
        (project / name).write_text(text)


def _pytest(
    project: Path,
    env: dict[str, str],
    *extra: str,
    user: str | None = None,
    warm: bool = True,
    runs: int = 1,
) -> Figures:
    """Whole pytest runs in ``project`` (after an untimed warm-up run when ``warm``),
    with the plugins ``extra`` names (``-p``) and no others: the medians of ``runs``
    timed runs (a second-long suite varies by a tenth of a second from run to run)."""
    times = project / "times.json"
    env = {**env, "BENCH_TIMES": str(times), "PYTHONPATH": str(project)}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore"]
    argv += ["-p", "bench_times", *extra]
    if user is not None:
        argv = ["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in env.items()), *argv]
    figures: list[Figures] = []
    for run in ["warm-up"] * warm + ["timed"] * runs:
        start = time.perf_counter()
        done = subprocess.run(
            argv, cwd=project, env=env, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{run}: " + done.stdout[-1500:] + done.stderr[-500:])
        if run == "timed":
            recorded = json.loads(times.read_text())
            setups = [d for when, d in recorded if when == "setup"]
            teardowns = [d for when, d in recorded if when == "teardown"]
            figures.append(
                (
                    elapsed,
                    setups[0],
                    statistics.median(setups[1:]),
                    statistics.median(teardowns[:-1]),
                )
            )
    whole, first, fresh, drop = (statistics.median(column) for column in zip(*figures, strict=True))
    return whole, first, fresh, drop


def _envkit(base: Path, home: Path) -> Figures:
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    env.pop("ENVKIT_DEBUG", None)
    _built_id(home)  # cached after the first time: not timed
    project = base / "envkit-suite"
    _suite(project, {"conftest.py": CONFTEST, "test_fresh.py": TEST.format(tests=TESTS)})
    return _pytest(project, env, "-p", "envkit.testing.plugin", runs=RUNS)


def _pytest_postgresql(base: Path) -> tuple[Figures | None, str]:
    """The suite with pytest-postgresql's fixtures on the host's PostgreSQL 15."""
    try:
        import pytest_postgresql  # noqa: F401
    except ImportError:
        return None, "pytest-postgresql not installed (pip install -e .[dev])"
    if not os.path.exists(PG_CTL):
        return None, f"{PG_CTL} missing (apt-get install postgresql-15)"
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None, "as root PostgreSQL needs a 'postgres' user to run as"
        user = "postgres"
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="envkit-bench-ppg-", dir=shm if shm.is_dir() else None))
    project = scratch / "suite"
    try:
        _suite(project, {"test_fresh.py": PPG_TEST.format(tests=TESTS)})
        if user is not None:
            shutil.chown(scratch, user)
            for path in [project, *project.iterdir()]:
                shutil.chown(path, user)
        extra = ["-p", "pytest_postgresql.plugin", f"--postgresql-exec={PG_CTL}"]
        extra.append(f"--basetemp={scratch / 'tmp'}")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM")}
        env["HOME"] = str(scratch)
        return _pytest(project, env, *extra, user=user, runs=RUNS), ""
    except RuntimeError as exc:
        return None, f"pytest-postgresql failed: {_first_error(str(exc))}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _testcontainers(base: Path, home: Path) -> tuple[Figures | None, Figures | None, str]:
    """The suite with testcontainers' session pattern and a container per test."""
    if not (have("podman") and have("runc")):
        return None, None, "podman or runc not installed"
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
        results: list[Figures | None] = []
        notes = []
        for name, conftest in (("tc-session", TC_SESSION), ("tc-per-test", TC_PER_TEST)):
            project = base / name
            _suite(project, {"conftest.py": conftest, "test_fresh.py": TC_TEST.format(tests=TESTS)})
            try:
                # The per-test pattern is slow enough that a warm-up run adds nothing.
                session = name == "tc-session"
                results.append(_pytest(project, tc_env, warm=session, runs=3 if session else 1))
            except RuntimeError as exc:
                results.append(None)
                notes.append(f"{name} failed: {_first_error(str(exc))}")
        return results[0], results[1], "; ".join(notes)
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
        ppg, ppg_note = _pytest_postgresql(base)
        session, per_test, tc_note = _testcontainers(base, home)
        _unmount_below(base)
    suite = f"testing: {TESTS} tests, fresh PostgreSQL db each"
    ppg_name, tc_name = "pytest-postgresql", "testcontainers"
    return [
        Result(suite, whole, ppg_name, ppg and ppg[0], ppg_note or "target <= 1.5x (host PG)"),
        Result(suite, whole, tc_name + " session", session and session[0],
               tc_note or "target <= 0.25x (one container, CREATE DATABASE per test)"),
        Result(suite, whole, tc_name + " per test", per_test and per_test[0],
               tc_note or "target <= 0.025x (a container per test)"),
        Result("testing: first database (server start incl.)", first, ppg_name,
               ppg and ppg[1], "target <= 0.5 s; the first test's setup, image cached"),
        Result("testing: each further database (setup)", fresh, ppg_name, ppg and ppg[2],
               "target <= 5 ms; made ahead in the background"),
        Result("testing: after a test (teardown)", drop, ppg_name, ppg and ppg[3],
               "envkit drops in the background"),
    ]  # fmt: skip


if __name__ == "__main__":
    from tests.benchmarks.common import table

    print(table(main()))
