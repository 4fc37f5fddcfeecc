"""Fresh databases per test on one running server, ready before a test asks.

A :class:`DatabasePool` keeps a few databases ready for each kind a suite uses (a kind
is a seed: none, some SQL files or a callable) and hands one out at a test's setup; a
background thread, the filler, makes the next ones while tests run and drops the used
ones after them, so a test's setup only takes a name from a queue.

* PostgreSQL: the seed runs once into a template database, sealed; each test's database
  is a clone (``CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY``, template1 without
  a seed) and is dropped ``WITH (FORCE)`` afterwards. The filler talks to the server
  over one connection of its own (:mod:`envkit.testing.pgwire`, the protocol spoken by
  envkit itself: no client library needed at run time).
* MariaDB (no templates): each database is created empty and the seed replayed into
  it, both in the background, through the server's own client in its container.
* Redis: a database is an index (``redis://host:port/N``, N from 1); after a test its
  index is emptied (``FLUSHDB``) and handed out again.

Seed files run through the server's own client inside its container (``psql``,
``mariadb``), as a user would run them; :meth:`Database.sql` does the same.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Protocol, TypeAlias

from envkit.errors import EnvkitError
from envkit.records import Record, Value, field
from envkit.testing.session import worker_id

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.recipes import Recipe, SqlAdmin
    from envkit.testing.handles import ServiceHandle
    from envkit.testing.pgwire import PgConnection
    from envkit.testing.resp import RespConnection

#: Databases of each kind kept ready ahead of the tests that will ask for them.
DEFAULT_READY = 4
#: Seconds a test waits for its database before the fixture fails.
WAIT_S = 120.0


class Database(Value):
    """A database of a running server: ``name``, ``host``, ``port``, ``user``,
    ``password`` and ``url`` (connect with any client library)."""

    name: str
    host: str
    port: int
    user: str
    password: str
    url: str
    service: ServiceHandle = field(repr=False, compare=False)

    def sql(self, script: str) -> str:
        """Run ``script`` with the server's client in its container; its output."""
        return self.service.databases().run(script.encode(), self.name)


#: SQL files (a path or a list), or a callable given the template database to fill.
Seed: TypeAlias = (
    str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Callable[[Database], object] | None
)


class Server(Protocol):
    """What the pool does on one kind of server: :meth:`prepare` runs in the thread of
    the test asking, :meth:`create`, :meth:`drop` and :meth:`close` in the filler
    thread, :meth:`allocate` and :meth:`release` in the filler under the pool's lock."""

    def prepare(self, kind: Kind) -> None:
        """Whatever databases of ``kind`` need once, before the first (a template)."""
        ...

    def allocate(self) -> str | None:
        """A name for the next database, ``None`` when none is free now."""
        ...

    def release(self, name: str) -> None:
        """``name`` was dropped (or emptied) and may be handed out again."""
        ...

    def create(self, name: str, kind: Kind) -> None:
        """Make database ``name`` of ``kind``, its seed applied."""
        ...

    def drop(self, name: str) -> None:
        """Remove (or empty) database ``name``, closing what a test left connected."""
        ...

    def interrupt(self) -> None:
        """Make what the filler waits for return at once (its sockets shut down)."""
        ...

    def close(self) -> None:
        """Close the filler's connections."""
        ...


class Kind(Record):
    """The databases of one seed: those ready, those being made, the last failure."""

    seed: Seed
    base: Path | None
    ready: deque[str] = field(default_factory=deque)
    making: int = 0
    error: EnvkitError | None = None
    paused: bool = False
    template: str | None = None
    prepared: bool = False
    """Whether :meth:`Server.prepare` is done (its template exists): only then does
    the filler make databases of this kind."""


class DatabasePool:
    """The databases tests get from one server (see the module)."""

    def __init__(
        self,
        service: ServiceHandle,
        *,
        ready: int = DEFAULT_READY,
        server: Callable[[DatabasePool], Server] | None = None,
    ) -> None:
        recipe = service.recipe
        if recipe is None or (recipe.admin is None and recipe.scheme != "redis"):
            what = "not a recipe" if recipe is None else f"a {recipe.scheme} server"
            raise EnvkitError(
                f"service {service.name!r} is {what}: it has no databases to hand out",
                hint="database_fixture() takes a service_fixture of postgres(), mariadb() "
                "or redis()",
            )
        self.service = service
        self.recipe: Recipe = recipe
        self.ready = max(1, ready)
        self._server = (server or _server_for)(self)
        self._cond = threading.Condition()
        self._kinds: dict[object, Kind] = {}
        self._drops: deque[str] = deque()
        self._dropping: set[str] = set()
        self._templates: dict[object, str] = {}
        self._closed = False
        self._drain = True
        self._threads: list[threading.Thread] = []
        self._port: int | None = None
        #: Drops that failed (the filler goes on: a test server is thrown away anyway).
        self.drop_errors: list[str] = []

    @property
    def admin(self) -> SqlAdmin:
        """How SQL databases are managed on this server (not for Redis)."""
        if self.recipe.admin is None:
            raise EnvkitError(f"a {self.recipe.scheme} server runs no SQL")
        return self.recipe.admin

    def database(self, name: str) -> Database:
        """The :class:`Database` called ``name`` on this server."""
        if self._port is None:  # asked once: the published port stays while it runs
            self._port = self.service.port()
        recipe, host, port = self.recipe, self.service.host, self._port
        url = recipe.url(host, port, name)
        return Database(name, host, port, recipe.user, recipe.password, url, self.service)

    # -- what fixtures call ------------------------------------------------------------

    def prepare(self, seed: Seed = None, *, base: Path | None = None) -> None:
        """Start making databases of ``seed`` in the background (a service fixture
        calls this for the database fixtures defined on it, before any test asks)."""
        with self._cond:
            kind = self._kind(seed, base)
        try:
            self._server.prepare(kind)
        except EnvkitError as exc:
            with self._cond:
                kind.error, kind.paused = exc, True
            return
        with self._cond:
            kind.prepared = True
            self._start()
            self._cond.notify_all()

    def create(
        self, seed: Seed = None, *, base: Path | None = None, timeout: float = WAIT_S
    ) -> Database:
        """A fresh database holding what ``seed`` creates (relative seed paths are
        resolved against ``base``): one made ahead, or the next one the filler makes.
        A seed or server failure raises :class:`EnvkitError` with the server's message."""
        with self._cond:
            if self._closed:
                raise EnvkitError(
                    f"the database pool of {self._where()} is closed",
                    hint="ask for databases while the service fixture is in scope",
                )
            kind = self._kind(seed, base)
            kind.paused = False  # a failed kind is tried again for each test asking
            kind.error = None
        self._server.prepare(kind)  # a failing seed raises here, with its message
        with self._cond:
            kind.prepared = True
            self._start()
            self._cond.notify_all()
            waited = self._cond.wait_for(lambda: kind.ready or kind.error, timeout)
            error = _take_error(kind)
            if error is not None:
                raise error
            if not waited:
                raise EnvkitError(
                    f"no database ready on {self._where()} after {timeout:g} s",
                    hint="the server may be overloaded; see its logs",
                )
            name = kind.ready.popleft()
            self._cond.notify_all()  # make the next one
        return self.database(name)

    def drop(self, database: Database, *, wait: bool = False) -> None:
        """Drop ``database`` in the background (``wait``: before returning), closing
        whatever connections a test left open."""
        with self._cond:
            if self._closed:
                return
            self._drops.append(database.name)
            self._start()
            self._cond.notify_all()
            if wait:
                self._cond.wait_for(lambda: database.name not in self._drops_pending(), WAIT_S)

    def close(self, *, drain: bool = True) -> None:
        """Stop the filler and close its connections, after the drops asked for
        (``drain``) or at once: the service fixture does not drain when the server is
        about to be removed anyway."""
        with self._cond:
            self._closed, self._drain = True, drain
            if not drain:
                self._drops.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        if not drain:
            self._server.interrupt()
        for thread in threads:
            thread.join(WAIT_S)
        self._server.close()

    # -- SQL through the server's own client ------------------------------------------

    def template(self, seed: Seed, *, base: Path | None = None) -> str:
        """The template database holding ``seed``: created and filled on first use."""
        key = _seed_key(seed, base)
        name = self._templates.get(key)
        if name is None:
            name = f"envkit_template_{len(self._templates) + 1}"
            admin = self.admin
            self.run(admin.create(name, None).encode(), self.recipe.database)
            self.apply(seed, self.database(name), base)
            self.run(admin.seal(name).encode(), self.recipe.database)
            self._templates[key] = name
        return name

    def run(self, script: bytes, database: str) -> str:
        """Run SQL ``script`` against ``database`` with the server's client in its
        container; its output. A failing statement raises, with the client's message."""
        argv = self.admin.client(database)
        source = os.memfd_create("envkit-sql")
        sink = os.memfd_create("envkit-sql-output")
        try:
            os.write(source, script)
            os.lseek(source, 0, os.SEEK_SET)
            code = self.service.exec_raw(argv, (source, sink, sink))
            os.lseek(sink, 0, os.SEEK_SET)
            output = _read_all(sink).decode(errors="replace")
        finally:
            os.close(source)
            os.close(sink)
        if code != 0:
            first = script.decode(errors="replace").strip().splitlines()[:1]
            raise EnvkitError(
                f"SQL on {self._where()} (database {database!r}) "
                f"failed with exit code {code}: {output.strip()[-800:]}",
                hint=f"the script began: {first[0][:200]!r}" if first else None,
            )
        return output

    def apply(self, seed: Seed, database: Database, base: Path | None) -> None:
        """Fill ``database`` with ``seed`` (call it, or run its SQL files in order)."""
        if callable(seed):
            seed(database)
            return
        for path in _seed_files(seed, base):
            try:
                script = path.read_bytes()
            except OSError as exc:
                raise EnvkitError(
                    f"cannot read seed file {path}: {exc.strerror}",
                    hint="seed paths are relative to pytest's rootdir",
                ) from None
            self.run(script, database.name)

    # -- the filler ---------------------------------------------------------------------

    def _kind(self, seed: Seed, base: Path | None) -> Kind:
        key = _seed_key(seed, base)
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._kinds[key] = Kind(seed, base)
        return kind

    def _start(self) -> None:
        """Start the filler: one thread making databases, one dropping them, each with
        its own connection, so that a drop never delays the next test's database."""
        if self._threads or self._closed:
            return
        for making in (True, False):
            role = "make" if making else "drop"
            thread = threading.Thread(
                target=self._fill,
                args=(making,),
                name=f"envkit-db-{role}-{self.service.name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _drops_pending(self) -> set[str]:
        return set(self._drops) | self._dropping

    def _fill(self, making: bool) -> None:
        while True:
            with self._cond:
                job = self._next_job(making)
                while job is None:
                    if self._closed and (making or not self._drops):
                        return
                    self._cond.wait()
                    job = self._next_job(making)
            job()

    def _next_job(self, making: bool) -> Callable[[], None] | None:
        """What to do next (under the lock): the maker makes a database a kind lacks,
        the dropper drops one; after :meth:`close`, only the drops."""
        if making and not self._closed:
            for kind in self._kinds.values():
                if not kind.prepared or kind.paused:
                    continue
                if len(kind.ready) + kind.making >= self.ready:
                    continue
                try:
                    name = self._server.allocate()
                except Exception as exc:  # the server is unreachable: tell the waiters
                    kind.error = EnvkitError(f"cannot reach {self._where()}: {exc}")
                    kind.paused = True
                    self._cond.notify_all()
                    continue
                if name is None:
                    break
                kind.making += 1
                return partial(self._make, kind, name)
        if not making and self._drops:
            name = self._drops.popleft()
            self._dropping.add(name)
            return partial(self._drop, name)
        return None

    def _make(self, kind: Kind, name: str) -> None:
        error: EnvkitError | None = None
        try:
            self._server.create(name, kind)
        except EnvkitError as exc:
            error = exc
        except Exception as exc:  # the filler must outlive any failure
            error = EnvkitError(f"cannot make a database on {self._where()}: {exc}")
        with self._cond:
            kind.making -= 1
            if error is None:
                kind.ready.append(name)
            else:
                kind.error, kind.paused = error, True
                if self._drain:
                    self._drops.append(name)  # whatever part of it was made
            self._cond.notify_all()

    def _drop(self, name: str) -> None:
        try:
            self._server.drop(name)
        except Exception as exc:  # noted; the next drops still run
            if self._drain:
                self.drop_errors.append(f"{name}: {exc}")
            released = False
        else:
            released = True
        with self._cond:
            self._dropping.discard(name)
            if released:
                self._server.release(name)
            self._cond.notify_all()

    def _where(self) -> str:
        return f"{self.service.stack}/{self.service.name}"


def _take_error(kind: Kind) -> EnvkitError | None:
    """``kind``'s failure, cleared: the next test asking tries again."""
    error, kind.error = kind.error, None
    return error


def _server_for(pool: DatabasePool) -> Server:
    scheme = pool.recipe.scheme
    if scheme == "postgresql":
        return PostgresServer(pool)
    if scheme == "redis":
        return RedisServer(pool)
    return ExecServer(pool)


class _Counted:
    """Database names ``test_<worker>_<n>``: unique per pool, never reused."""

    def __init__(self) -> None:
        self._counter = 0

    def allocate(self) -> str | None:
        self._counter += 1
        return f"test_{worker_id()}_{self._counter}"

    def release(self, name: str) -> None:
        pass


class PostgresServer(_Counted):
    """Clones over the filler's own connection; a seed's template through ``psql``
    (its files run as ``psql`` runs them), in the thread of the first test asking."""

    def __init__(self, pool: DatabasePool) -> None:
        super().__init__()
        self.pool = pool
        self._local = threading.local()
        self._conns: list[PgConnection] = []

    def prepare(self, kind: Kind) -> None:
        if kind.template is None:
            seeded = kind.seed is not None
            kind.template = self.pool.template(kind.seed, base=kind.base) if seeded else "template1"

    def _connection(self) -> PgConnection:
        """The calling thread's connection (the maker and the dropper have one each)."""
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            from envkit.testing.pgwire import PgConnection  # lazy: PostgreSQL pools only

            recipe, pool = self.pool.recipe, self.pool
            conn = PgConnection(
                pool.service.host,
                pool.database(recipe.database).port,
                recipe.user,
                recipe.password,
                recipe.database,
            )
            self._local.conn = conn
            self._conns.append(conn)
        return conn

    def create(self, name: str, kind: Kind) -> None:
        self._connection().execute(self.pool.admin.create(name, kind.template))

    def drop(self, name: str) -> None:
        self._connection().execute(self.pool.admin.drop(name))

    def interrupt(self) -> None:
        for conn in list(self._conns):
            conn.interrupt()

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()


class ExecServer(_Counted):
    """Servers without templates (MariaDB): create, then replay the seed, through the
    server's client in its container (from the filler thread)."""

    def __init__(self, pool: DatabasePool) -> None:
        super().__init__()
        self.pool = pool

    def prepare(self, kind: Kind) -> None:
        pass

    def create(self, name: str, kind: Kind) -> None:
        pool = self.pool
        pool.run(pool.admin.create(name, None).encode(), pool.recipe.database)
        if kind.seed is not None:
            pool.apply(kind.seed, pool.database(name), kind.base)

    def drop(self, name: str) -> None:
        self.pool.run(self.pool.admin.drop(name).encode(), self.pool.recipe.database)

    def interrupt(self) -> None:
        pass  # an exec in the container runs to its end

    def close(self) -> None:
        pass


class RedisServer:
    """Database indexes 1..N-1 of a Redis server (N: its ``databases`` setting); a seed
    callable fills an index, ``FLUSHDB`` empties it after the test."""

    def __init__(self, pool: DatabasePool) -> None:
        self.pool = pool
        self._local = threading.local()
        self._conns: list[RespConnection] = []
        self._free: deque[str] | None = None

    def _connection(self) -> RespConnection:
        """The calling thread's connection (the maker and the dropper have one each)."""
        conn: RespConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            from envkit.testing.resp import RespConnection  # lazy: Redis pools only

            conn = RespConnection(self.pool.service.host, self.pool.database("0").port)
            self._local.conn = conn
            self._conns.append(conn)
        return conn

    def prepare(self, kind: Kind) -> None:
        if kind.seed is not None and not callable(kind.seed):
            raise EnvkitError(
                "a Redis database is seeded by a callable, not SQL files",
                hint="database_fixture(cache, seed=lambda db: ...) connecting to db.url",
            )

    def allocate(self) -> str | None:
        if self._free is None:
            reply = self._connection().command("CONFIG", "GET", "databases")
            count = 16
            if isinstance(reply, list) and len(reply) == 2 and str(reply[1]).isdigit():
                count = int(str(reply[1]))
            self._free = deque(str(i) for i in range(1, count))
        return self._free.popleft() if self._free else None

    def release(self, name: str) -> None:
        if self._free is not None:
            self._free.append(name)

    def create(self, name: str, kind: Kind) -> None:
        if callable(kind.seed):
            kind.seed(self.pool.database(name))

    def drop(self, name: str) -> None:
        conn = self._connection()
        conn.command("SELECT", name)
        conn.command("FLUSHDB")

    def interrupt(self) -> None:
        for conn in list(self._conns):
            conn.interrupt()

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()


def _seed_files(seed: Seed, base: Path | None) -> list[Path]:
    items = [seed] if isinstance(seed, str | os.PathLike) else list(seed or ())  # type: ignore[arg-type]
    return [(base or Path.cwd()) / Path(item) for item in items]


def _seed_key(seed: Seed, base: Path | None) -> object:
    """Equal for seeds that fill a database the same way: the callable itself, or
    the files by path and modification time."""
    if seed is None:
        return None
    if callable(seed):
        return seed
    found = []
    for path in _seed_files(seed, base):
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = -1
        found.append((str(path), mtime))
    return tuple(found)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
