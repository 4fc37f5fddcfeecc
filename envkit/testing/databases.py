"""Fresh databases per test on one running server, without restarting it.

PostgreSQL: the seed (SQL files or a callable) runs once into a template database,
which every test's database is then cloned from (``CREATE DATABASE ... TEMPLATE``,
tens of milliseconds). Servers without templates (MariaDB) get an empty database
with the seed replayed into it. SQL runs through the server's own client inside its
container, so nothing needs to be installed on the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from envkit.errors import EnvkitError
from envkit.testing.session import worker_id

if TYPE_CHECKING:
    from envkit.recipes import Recipe, SqlAdmin
    from envkit.testing.handles import ServiceHandle


@dataclass(frozen=True)
class Database:
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


class DatabasePool:
    """The databases tests create on one server (see the module)."""

    def __init__(self, service: ServiceHandle) -> None:
        recipe = service.recipe
        if recipe is None or recipe.admin is None:
            what = "not a recipe" if recipe is None else f"a {recipe.scheme} server"
            raise EnvkitError(
                f"service {service.name!r} is {what}: it has no SQL databases to create",
                hint="database_fixture() takes a service_fixture of postgres() or mariadb()",
            )
        self.service = service
        self.recipe: Recipe = recipe
        self.admin: SqlAdmin = recipe.admin
        self._templates: dict[object, str] = {}
        self._counter = 0

    def database(self, name: str) -> Database:
        """The :class:`Database` called ``name`` on this server."""
        recipe, host, port = self.recipe, self.service.host, self.service.port()
        url = recipe.url(host, port, name)
        return Database(name, host, port, recipe.user, recipe.password, url, self.service)

    def create(self, seed: Seed = None, *, base: Path | None = None) -> Database:
        """A new database, named after the xdist worker and a counter, holding what
        ``seed`` creates (relative seed paths are resolved against ``base``)."""
        self._counter += 1
        name = f"test_{worker_id()}_{self._counter}"
        if self.admin.templates:
            template = self.template(seed, base=base) if seed is not None else "template1"
            self.run(self.admin.create(name, template).encode(), self.recipe.database)
            return self.database(name)
        self.run(self.admin.create(name, None).encode(), self.recipe.database)
        database = self.database(name)
        if seed is not None:
            self._apply(seed, database, base)
        return database

    def drop(self, database: Database) -> None:
        """Drop ``database``, closing whatever connections a test left open."""
        self.run(self.admin.drop(database.name).encode(), self.recipe.database)

    def template(self, seed: Seed, *, base: Path | None = None) -> str:
        """The template database holding ``seed``: created and filled on first use."""
        key = _seed_key(seed, base)
        name = self._templates.get(key)
        if name is None:
            name = f"envkit_template_{len(self._templates) + 1}"
            self.run(self.admin.create(name, None).encode(), self.recipe.database)
            self._apply(seed, self.database(name), base)
            self.run(self.admin.seal(name).encode(), self.recipe.database)
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
                f"SQL on {self.service.stack}/{self.service.name} (database {database!r}) "
                f"failed with exit code {code}: {output.strip()[-800:]}",
                hint=f"the script began: {first[0][:200]!r}" if first else None,
            )
        return output

    def _apply(self, seed: Seed, database: Database, base: Path | None) -> None:
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


def _seed_files(seed: Seed, base: Path | None) -> list[Path]:
    items = [seed] if isinstance(seed, str | os.PathLike) else list(seed or ())  # type: ignore[arg-type]
    return [(base or Path.cwd()) / Path(item) for item in items]


def _seed_key(seed: Seed, base: Path | None) -> object:
    """Equal for seeds that fill a template the same way: the callable itself, or
    the files by path and modification time."""
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
