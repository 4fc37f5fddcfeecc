"""Real application code (psycopg and redis-py from PyPI) against the PostgreSQL,
Redis and MariaDB recipes built from Debian packages, through the plugin's fixtures: a
fresh database per test, seeded once from SQL files or a callable, made ahead by the
pool's background filler and dropped after; a fresh Redis database index per test.

The first build bootstraps Debian (about a minute per recipe): marked slow. Set
ENVKIT_TEST_RECIPES_HOME to a directory to keep the built images between runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envkit.recipes import mariadb, postgres, redis
from envkit.testing import Database, ServiceHandle, database_fixture, service_fixture

psycopg = pytest.importorskip("psycopg")
redis_py = pytest.importorskip("redis")

pytestmark = [pytest.mark.slow, pytest.mark.rootless]

SEEDED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def recipes_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ENVKIT_HOME the recipes build and run in (autouse: set before they start)."""
    from envkit.runtime import probes

    check = probes.user_namespaces()
    if not check.ok:
        pytest.skip(f"user namespaces unavailable: {check.detail}")
    kept = os.environ.get("ENVKIT_TEST_RECIPES_HOME")
    home = Path(kept) if kept else tmp_path_factory.mktemp("recipes") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVKIT_HOME", str(home))
        yield home


def seed_items(db: Database) -> None:
    SEEDED.append(db.name)
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO item VALUES (1, 'apple'), (2, 'pear')")


pg = service_fixture(postgres(version=15), scope="module")
postgres_db = database_fixture(pg)
items_db = database_fixture(pg, seed=seed_items)
cache = service_fixture(redis(version=7), scope="module")
cache_db = database_fixture(cache)


def _until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_server_is_reached_by_its_url(pg: ServiceHandle) -> None:
    with psycopg.connect(pg.url) as conn:
        (version,) = conn.execute("SHOW server_version").fetchone()
        (user,) = conn.execute("SELECT current_user").fetchone()
    assert version.startswith("15.") and user == "postgres"
    assert pg.exec(["id", "-un"]).output.strip() == "postgres"  # the server is not root


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_a_fresh_empty_database(postgres_db: Database, round_: int) -> None:
    with psycopg.connect(postgres_db.url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)
        conn.execute("CREATE TABLE leftover (n int)")
    assert postgres_db.name.startswith("test_main_")


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_seeded_once_cloned_per_test(items_db: Database, round_: int) -> None:
    with psycopg.connect(items_db.url) as conn:
        names = conn.execute("SELECT name FROM item ORDER BY id").fetchall()
        conn.execute("DELETE FROM item")
    assert names == [("apple",), ("pear",)]
    assert len(SEEDED) == 1


def test_seed_from_sql_files(pg: ServiceHandle, tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text("CREATE TABLE t (x int);\n")
    (tmp_path / "data.sql").write_text("INSERT INTO t VALUES (41), (1);\n")
    pool = pg.databases()
    db = pool.create(["schema.sql", "data.sql"], base=tmp_path)
    try:
        assert db.sql("SELECT sum(x) FROM t;").split() == ["42"]
    finally:
        pool.drop(db, wait=True)
    with psycopg.connect(pg.url) as conn:
        gone = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [db.name])
        assert gone.fetchone() == (0,)


def test_a_bad_seed_names_the_error(pg: ServiceHandle, tmp_path: Path) -> None:
    from envkit.errors import EnvkitError

    (tmp_path / "bad.sql").write_text("CREATE TABLE t (x nosuchtype);\n")
    with pytest.raises(EnvkitError, match="nosuchtype"):
        pg.databases().create("bad.sql", base=tmp_path)


def test_databases_are_made_ahead_and_dropped_after(pg: ServiceHandle) -> None:
    """The pool keeps databases ready (cloned over its own connection, not by psql in
    the container) and drops a used one in the background, connections and all."""
    pool = pg.databases()
    db = pool.create()
    kind = pool._kinds[None]
    _until(lambda: len(kind.ready) == pool.ready)
    ready = list(kind.ready)
    with psycopg.connect(pg.url) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'test_main_%'"
        ).fetchall()
        clients = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'envkit'"
        ).fetchone()
    assert {db.name, *ready} <= {name for (name,) in rows}
    assert clients is not None and clients[0] >= 1  # the pool's own connection
    left_open = psycopg.connect(db.url)  # a test that forgets to close its connection
    try:
        pool.drop(db, wait=True)
    finally:
        left_open.close()
    with psycopg.connect(pg.url) as conn:
        gone = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [db.name])
        assert gone.fetchone() == (0,)
    assert pool.drop_errors == []


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_each_test_gets_a_fresh_redis_database(cache_db: Database, round_: int) -> None:
    client = redis_py.Redis.from_url(cache_db.url)
    try:
        assert client.dbsize() == 0  # emptied (FLUSHDB) after the test that used it
        client.set("left", "behind")
    finally:
        client.close()
    assert cache_db.url.endswith(f"/{cache_db.name}") and cache_db.name != "0"


def test_redis_by_its_url(cache: ServiceHandle) -> None:
    client = redis_py.Redis.from_url(cache.url)
    try:
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert client.incr("counter") == 1
    finally:
        client.close()
    assert cache.exec(["id", "-un"]).output.strip() == "redis"


maria = service_fixture(mariadb(), scope="module")
maria_db = database_fixture(maria, seed=lambda db: db.sql("CREATE TABLE t (x int);"))


@pytest.mark.parametrize("round_", [1, 2])
def test_mariadb_fresh_seeded_database(
    maria: ServiceHandle, maria_db: Database, round_: int
) -> None:
    assert maria_db.sql("INSERT INTO t VALUES (7); SELECT count(*) FROM t;").split()[-1] == "1"
    assert maria.url.startswith("mysql://root:mariadb@127.0.0.1:")
    # The URL's credentials work over TCP (run from inside: no MySQL client on the host).
    login = ["mariadb", "-h", "127.0.0.1", "-uroot", "-pmariadb", "-N", "-e", "SELECT 1"]
    assert maria.exec(login).output.split() == ["1"]
    assert maria.exec(["id", "-un"]).output.strip() == "mysql"
