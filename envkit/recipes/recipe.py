"""``Recipe``: a ready-made service plus what a test needs to use it (port, URL, SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from urllib.parse import quote

from envkit.records import Value
from envkit.spec import Service


class SqlAdmin(Protocol):
    """How to manage the databases of a SQL server from inside its container."""

    @property
    def templates(self) -> bool:
        """Whether ``CREATE DATABASE ... TEMPLATE`` clones a seeded database
        (PostgreSQL); without it a fresh database is created empty and the seed replayed."""
        ...

    def client(self, database: str) -> list[str]:
        """The argv that runs the SQL script on its stdin against ``database`` in the
        container, stopping at the first error."""
        ...

    def create(self, name: str, template: str | None) -> str:
        """SQL creating database ``name`` (a clone of ``template`` when given)."""
        ...

    def drop(self, name: str) -> str:
        """SQL dropping database ``name``, closing its connections first."""
        ...

    def seal(self, name: str) -> str:
        """SQL making ``name`` a template nobody connects to any more (cloning fails
        while a connection is open)."""
        ...


class Recipe(Value):
    """A ready service: pass it to :func:`envkit.testing.service_fixture`, or use
    ``recipe.service`` in a :class:`~envkit.Stack` of your own.

    ``port`` is the container port clients use, ``scheme``/``user``/``password``/
    ``database`` make its connection URL, ``admin`` manages databases (``None``: the
    service has none, as Redis).
    """

    service: Service
    port: int
    scheme: str
    user: str = ""
    password: str = ""
    database: str = ""
    admin: SqlAdmin | None = None

    @property
    def name(self) -> str:
        """The service's name."""
        return self.service.name

    def url(self, host: str, port: int, database: str | None = None) -> str:
        """The connection URL for the server reached at ``host:port``; ``database``
        replaces the default one."""
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        path = database if database is not None else self.database
        return f"{self.scheme}://{auth}{host}:{port}" + (f"/{path}" if path else "")


def shell_quote(words: Sequence[str]) -> str:
    """``words`` as one POSIX shell command line."""
    import shlex  # lazy: only when a command line is built

    return " ".join(shlex.quote(w) for w in words)
