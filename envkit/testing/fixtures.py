"""Fixture factories: ``service_fixture``, ``stack_fixture``, ``database_fixture``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pytest

from envkit.errors import EnvkitError
from envkit.testing.plugin import FAILED_KEY
from envkit.testing.session import ServiceSession

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.recipes import Recipe
    from envkit.spec import Service, Stack
    from envkit.stack.api import RunningStack
    from envkit.testing.databases import Database, Seed
    from envkit.testing.handles import ServiceHandle, StackHandle

Scope = Literal["session", "package", "module", "class", "function"]


def service_fixture(
    service: Service | Recipe, *, scope: Scope = "session", name: str | None = None
) -> Any:
    """A fixture that builds (cached), starts and waits for ``service`` (a
    :class:`~envkit.Service` or a recipe such as ``postgres()``), yields a
    :class:`~envkit.testing.handles.ServiceHandle` and tears it down after ``scope``.

    The fixture is named after the variable it is assigned to in a conftest or test
    module (``pg = service_fixture(...)``), or ``name``. A service that never becomes
    ready fails the fixture with its last health check output and log lines.
    """
    # lazy for start-up: envkit.testing loads no spec objects until a fixture is made
    from envkit.recipes import Recipe

    recipe = service if isinstance(service, Recipe) else None
    spec = service.service if isinstance(service, Recipe) else service
    seeds: list[Seed] = []  # of the database fixtures on this one, made ahead

    def fixture(request: pytest.FixtureRequest) -> Iterator[ServiceHandle]:
        # lazy for start-up: envkit.testing loads no spec objects until a fixture runs
        from envkit.spec import Stack
        from envkit.testing.handles import ServiceHandle

        session = ServiceSession.of(request.config)
        stack = Stack(session.stack_name(request.fixturename or "svc"), services=[spec])
        handle = ServiceHandle(_up(session, stack, request)[spec.name], recipe)
        try:
            if recipe is not None and (recipe.admin is not None or recipe.scheme == "redis"):
                pool = handle.databases()
                for seed in seeds:
                    pool.prepare(seed, base=request.config.rootpath)
            yield handle
        finally:
            # Without --envkit-keep the server goes: dropping its used databases first
            # would only make the teardown wait.
            handle.close(drain=session.options.keep)
            _finish(session, stack.name, request, handle.reach)

    fixture.__doc__ = f"envkit service {spec.name!r} ({scope} scope)"
    defined = _named(pytest.fixture(scope=scope, name=name)(fixture), name)
    defined._envkit_seeds = seeds
    return defined


def stack_fixture(
    stack: Stack | Sequence[Service | Recipe],
    *,
    scope: Scope = "session",
    name: str | None = None,
) -> Any:
    """A fixture that brings ``stack`` (or a stack of these services and recipes) up,
    yields a :class:`~envkit.testing.handles.StackHandle` (``handle["db"].port(5432)``)
    and brings it down, volumes included, after ``scope``. The stack runs under a
    name of its own per fixture, xdist worker and pytest process."""
    # lazy for start-up: envkit.testing loads no spec objects until a fixture is made
    from envkit.recipes import Recipe
    from envkit.spec import Stack

    recipes: dict[str, Recipe] = {}
    if isinstance(stack, Stack):
        services, volumes, networks, base_dir = (
            stack.services,
            stack.volumes,
            stack.networks,
            stack.base_dir,
        )
    else:
        items = list(stack)
        recipes = {r.name: r for r in items if isinstance(r, Recipe)}
        services = tuple(r.service if isinstance(r, Recipe) else r for r in items)
        volumes, networks, base_dir = (), (), None

    def fixture(request: pytest.FixtureRequest) -> Iterator[StackHandle]:
        from envkit.testing.handles import StackHandle  # lazy for start-up (downward)

        session = ServiceSession.of(request.config)
        renamed = Stack(
            session.stack_name(request.fixturename or "svc"),
            services,
            volumes=volumes,
            networks=networks,
        )
        if base_dir is not None:
            renamed = renamed.with_base_dir(base_dir)
        handle = StackHandle(_up(session, renamed, request), recipes)
        try:
            yield handle
        finally:
            _finish(session, renamed.name, request, handle.reach)

    fixture.__doc__ = "envkit stack of " + ", ".join(s.name for s in services)
    return _named(pytest.fixture(scope=scope, name=name)(fixture), name)


def database_fixture(
    service: Any, seed: Seed = None, *, scope: Scope = "function", name: str | None = None
) -> Any:
    """A fixture giving each test (or ``scope``) a fresh database on the server of
    ``service`` (a :func:`service_fixture` of ``postgres()`` or ``mariadb()``, or its
    name), dropped afterwards: a :class:`~envkit.testing.databases.Database` with
    ``.url``, ``.host``, ``.port``, ``.name``.

    ``seed``: SQL files (paths relative to pytest's rootdir) or a callable given the
    :class:`Database` to fill. With PostgreSQL it runs once per session into a template
    that every fresh database is cloned from.

    The databases are made ahead: once the server is up, a background thread keeps a
    few ready and drops used ones after their tests (see
    :class:`~envkit.testing.databases.DatabasePool`).
    """
    ahead = getattr(service, "_envkit_seeds", None)
    if isinstance(ahead, list) and not any(s is seed or s == seed for s in ahead):
        ahead.append(seed)

    def fixture(request: pytest.FixtureRequest) -> Iterator[Database]:
        handle: ServiceHandle = request.getfixturevalue(_fixture_name(request, service))
        try:
            pool = handle.databases()
            database = pool.create(seed, base=request.config.rootpath)
        except EnvkitError as exc:
            problem = str(exc)
        else:
            problem = ""
        if problem:
            pytest.fail(f"envkit: no fresh database: {problem}", pytrace=False)
        yield database
        session = ServiceSession.of(request.config)
        if session.options.keep and request.node.stash.get(FAILED_KEY, False):
            session.kept.append(
                f"database {database.name} of the failed {request.node.nodeid}: {database.url}"
            )
            return
        pool.drop(database)

    return pytest.fixture(scope=scope, name=name)(fixture)


def _up(session: ServiceSession, stack: Stack, request: pytest.FixtureRequest) -> RunningStack:
    """``session.up(stack)``; a failure fails the fixture with envkit's explanation."""
    try:
        return session.up(stack)
    except EnvkitError as exc:
        problem = str(exc)
    # Failed outside the except block: the report shows envkit's message, not a chain.
    pytest.fail(f"envkit fixture {request.fixturename!r} could not start: {problem}", pytrace=False)


def _named(defined: Any, name: str | None) -> Any:
    """``defined`` (a fixture) remembering an explicit ``name`` for database_fixture."""
    if name is not None:
        defined._envkit_fixture_name = name
    return defined


def _finish(session: ServiceSession, name: str, request: pytest.FixtureRequest, reach: Any) -> None:
    failed = request.session.testsfailed > 0
    note = ""
    if session.options.keep and failed:
        try:
            note = reach()
        except EnvkitError as exc:
            note = f"(cannot describe it: {exc.message})"
    session.finish(name, failed=failed, reach=note)


def _fixture_name(request: pytest.FixtureRequest, fixture: Any) -> str:
    """The name ``fixture`` (what a factory returned) is registered under: found where
    pytest found it, in the test's class or module or a conftest plugin."""
    if isinstance(fixture, str):
        return fixture
    explicit = getattr(fixture, "_envkit_fixture_name", None)
    if explicit:
        return str(explicit)
    holders: list[Any] = [request.cls, request.module]
    holders += request.config.pluginmanager.get_plugins()
    for holder in holders:
        names = vars(holder) if hasattr(holder, "__dict__") else {}
        for attr, value in names.items():
            if value is fixture:
                return str(attr)
    raise EnvkitError(
        "database_fixture(): its service fixture is not defined in this test's module, "
        "class or a conftest.py",
        hint='pass the service fixture\'s name instead: database_fixture("pg")',
    )
