"""The database pool's logic with a fake server: databases made ahead in the
background, handed out at setup, dropped after the test, one kind per seed, failures
reported to the test asking (and retried for the next), a clean close (issue 21)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from envkit.errors import EnvkitError
from envkit.recipes import mariadb, postgres, redis
from envkit.recipes.recipe import Recipe
from envkit.testing.databases import (
    Database,
    DatabasePool,
    Kind,
    PostgresServer,
    RedisServer,
    Server,
)
from envkit.testing.handles import ServiceHandle


class FakeHandle(ServiceHandle):
    """A ServiceHandle with no running service behind it: what the pool uses of one."""

    def __init__(self, recipe: Recipe) -> None:  # no RunningService: nothing to start
        self.recipe = recipe
        self._pool = None

    @property
    def name(self) -> str:
        return "postgres"

    @property
    def stack(self) -> str:
        return "pt-pg-main-1"

    def port(self, container_port: int | None = None, protocol: str = "tcp") -> int:
        return 5555


class FakeServer:
    """Records what the filler asked; ``fail`` makes creates raise."""

    def __init__(self, pool: DatabasePool) -> None:
        self.pool = pool
        self.counter = 0
        self.created: list[tuple[str, object]] = []
        self.dropped: list[str] = []
        self.prepared: list[object] = []
        self.fail: str | None = None
        self.closed = False
        self.interrupted = False
        self.gate = threading.Event()
        self.gate.set()

    def prepare(self, kind: Kind) -> None:
        self.prepared.append(kind.seed)

    def allocate(self) -> str | None:
        self.counter += 1
        return f"db{self.counter}"

    def release(self, name: str) -> None:
        pass

    def create(self, name: str, kind: Kind) -> None:
        self.gate.wait(10)
        if self.fail:
            raise EnvkitError(self.fail)
        self.created.append((name, kind.seed))

    def drop(self, name: str) -> None:
        self.gate.wait(10)
        self.dropped.append(name)

    def interrupt(self) -> None:
        self.interrupted = True
        self.gate.set()

    def close(self) -> None:
        self.closed = True


def _pool(ready: int = 3, recipe: Recipe | None = None) -> tuple[DatabasePool, FakeServer]:
    made: list[FakeServer] = []

    def server(pool: DatabasePool) -> Server:
        made.append(FakeServer(pool))
        return made[0]

    pool = DatabasePool(FakeHandle(recipe or postgres()), ready=ready, server=server)
    return pool, made[0]


def _until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_databases_are_made_ahead_and_handed_out() -> None:
    pool, server = _pool(ready=3)
    try:
        pool.prepare()
        _until(lambda: len(server.created) == 3)
        first = pool.create()
        assert first.name == "db1"
        assert first.url == "postgresql://postgres:postgres@127.0.0.1:5555/db1"
        _until(lambda: len(server.created) == 4)  # the next one, made in the background
        assert [pool.create().name for _ in range(5)] == ["db2", "db3", "db4", "db5", "db6"]
    finally:
        pool.close()
    assert server.closed


def test_used_databases_are_dropped_in_the_background() -> None:
    pool, server = _pool(ready=1)
    try:
        db = pool.create()
        server.gate.clear()  # the filler blocks: a drop cannot finish
        pool.drop(db)  # returns at once
        assert db.name not in server.dropped
        server.gate.set()
        _until(lambda: db.name in server.dropped)
        other = pool.create()
        pool.drop(other, wait=True)
        assert other.name in server.dropped
    finally:
        pool.close()


def test_close_finishes_the_drops_asked_for_and_makes_nothing_more() -> None:
    pool, server = _pool(ready=2)
    dbs = [pool.create() for _ in range(3)]
    server.gate.clear()
    for db in dbs:
        pool.drop(db)
    made = len(server.created)
    server.gate.set()
    pool.close()
    assert sorted(server.dropped) == sorted(db.name for db in dbs)
    assert len(server.created) <= made + 1  # at most the one under way
    assert server.closed
    pool.drop(dbs[0])  # after close: ignored, no error
    with pytest.raises(EnvkitError, match="pool of pt-pg-main-1/postgres is closed"):
        pool.create()


def test_each_seed_has_its_own_databases(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("CREATE TABLE a (x int);")
    seed_fn = lambda db: None  # noqa: E731

    pool, server = _pool(ready=1)
    try:
        plain = pool.create()
        from_files = pool.create("a.sql", base=tmp_path)
        again = pool.create(["a.sql"], base=tmp_path)
        from_fn = pool.create(seed_fn)
        seeds = dict(server.created)
        assert seeds[plain.name] is None
        assert seeds[from_files.name] == "a.sql" and seeds[again.name] == "a.sql"
        assert seeds[from_fn.name] is seed_fn
        assert len({plain.name, from_files.name, again.name, from_fn.name}) == 4
    finally:
        pool.close()


def test_a_failure_reaches_the_test_asking_and_is_tried_again_for_the_next() -> None:
    pool, server = _pool(ready=2)
    server.fail = 'ERROR: template database "t" is being accessed by other users'
    try:
        with pytest.raises(EnvkitError, match="being accessed"):
            pool.create()
        attempts = server.counter
        time.sleep(0.05)
        assert server.counter == attempts  # paused: no retry loop in the background
        server.fail = None
        assert pool.create().name.startswith("db")
    finally:
        pool.close()


def test_a_server_that_cannot_be_reached_fails_the_test_with_the_reason() -> None:
    class Unreachable(FakeServer):
        def allocate(self) -> str | None:
            raise ConnectionRefusedError(111, "Connection refused")

    def server(pool: DatabasePool) -> Server:
        return Unreachable(pool)

    pool = DatabasePool(FakeHandle(postgres()), server=server)
    try:
        with pytest.raises(EnvkitError, match=r"cannot reach pt-pg-main-1/postgres.*refused"):
            pool.create()
    finally:
        pool.close()


def test_a_test_waits_for_the_database_under_way() -> None:
    pool, server = _pool(ready=1)
    try:
        server.gate.clear()
        got: list[Database] = []
        taker = threading.Thread(target=lambda: got.append(pool.create()))
        taker.start()
        time.sleep(0.05)
        assert not got
        server.gate.set()
        taker.join(10)
        assert [db.name for db in got] == ["db1"]
    finally:
        pool.close()


def test_a_timeout_names_the_server() -> None:
    pool, server = _pool(ready=1)
    server.gate.clear()
    try:
        with pytest.raises(EnvkitError, match="no database ready on pt-pg-main-1/postgres"):
            pool.create(timeout=0.05)
    finally:
        server.gate.set()
        pool.close()


def test_a_service_without_databases_is_refused() -> None:
    from envkit.spec import Service

    plain = Recipe(Service("web", image="busybox"), 80, "http")
    with pytest.raises(EnvkitError, match="no databases to hand out"):
        DatabasePool(FakeHandle(plain))
    DatabasePool(FakeHandle(redis()), server=FakeServer)
    DatabasePool(FakeHandle(mariadb()), server=FakeServer)


class FakeSql:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: str) -> list[tuple[str | None, ...]]:
        self.statements.append(sql)
        return []

    def close(self) -> None:
        pass


def test_postgres_clones_template1_or_the_seeds_template(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # names carry the worker id
    pool = DatabasePool(FakeHandle(postgres()), server=FakeServer)
    server = PostgresServer(pool)
    conn = FakeSql()
    server._local.conn = conn
    made: list[object] = []

    def template(seed: object, base: object = None) -> str:
        made.append(seed)
        return "envkit_template_1"

    monkeypatch.setattr(pool, "template", template)
    plain, seeded = Kind(None, None), Kind("schema.sql", None)
    for kind in (plain, seeded, seeded):
        server.prepare(kind)
    assert made == ["schema.sql"]  # the template is made once
    name = server.allocate()
    assert name == "test_main_1"
    server.create(name, plain)
    server.create("test_main_2", seeded)
    server.drop(name)
    assert conn.statements == [
        'CREATE DATABASE "test_main_1" TEMPLATE "template1" STRATEGY FILE_COPY',
        'CREATE DATABASE "test_main_2" TEMPLATE "envkit_template_1" STRATEGY FILE_COPY',
        'DROP DATABASE IF EXISTS "test_main_1" WITH (FORCE)',
    ]


class FakeRedis:
    def __init__(self) -> None:
        self.commands: list[tuple[str, ...]] = []

    def command(self, *words: str) -> object:
        self.commands.append(words)
        return ["databases", "4"] if words[:2] == ("CONFIG", "GET") else "OK"

    def close(self) -> None:
        pass


def test_redis_hands_out_indexes_and_empties_them_for_reuse() -> None:
    pool = DatabasePool(FakeHandle(redis()), server=FakeServer)
    server = RedisServer(pool)
    conn = FakeRedis()
    server._local.conn = conn
    names = [server.allocate() for _ in range(4)]
    assert names == ["1", "2", "3", None]  # 0 is the URL's own database
    server.drop("2")
    server.release("2")
    assert server.allocate() == "2"
    assert conn.commands[-2:] == [("SELECT", "2"), ("FLUSHDB",)]
    assert pool.database("3").url == "redis://127.0.0.1:5555/3"
    with pytest.raises(EnvkitError, match="seeded by a callable"):
        server.prepare(Kind("data.sql", None))


def test_nothing_is_made_of_a_kind_before_it_is_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed's template is made in the thread asking; meanwhile the filler, busy with
    another kind, must not make a database of the new kind without its template."""
    pool, server = _pool(ready=1)
    entered, release = threading.Event(), threading.Event()

    def slow_prepare(kind: Kind) -> None:
        if kind.seed is not None:
            entered.set()
            release.wait(10)
        server.prepared.append(kind.seed)

    monkeypatch.setattr(server, "prepare", slow_prepare)
    try:
        pool.create()
        preparing = threading.Thread(target=lambda: pool.prepare("schema.sql"))
        preparing.start()
        assert entered.wait(10)
        pool.create()  # the filler runs while the seeded kind is being prepared
        time.sleep(0.05)
        assert all(seed is None for _, seed in server.created)
        release.set()
        preparing.join(10)
        assert pool.create("schema.sql").name in {n for n, s in server.created if s}
    finally:
        release.set()
        pool.close()


def test_close_without_draining_stops_at_once() -> None:
    """The service fixture's teardown when the server goes anyway: the queued drops
    are forgotten and what the filler waits for is interrupted."""
    pool, server = _pool(ready=1)
    dbs = [pool.create() for _ in range(3)]
    server.gate.clear()  # the filler blocks in its next call
    for db in dbs:
        pool.drop(db)
    pool.close(drain=False)
    assert server.interrupted and server.closed
    assert len(server.dropped) <= 1  # at most the one under way when interrupted
    assert pool.drop_errors == []
