"""Services and fresh databases for pytest suites (the plugin is active once envkit is
installed)::

    # conftest.py
    from envkit.recipes import postgres
    from envkit.testing import database_fixture, service_fixture

    pg = service_fixture(postgres(version=15), scope="session")   # one server per session
    postgres_db = database_fixture(pg)    # a fresh database per test: .url .host .port .name

See docs/reference/testing.md.
"""

from __future__ import annotations

from typing import Any

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.testing.databases import Database, DatabasePool, Seed
    from envkit.testing.fixtures import database_fixture, service_fixture, stack_fixture
    from envkit.testing.handles import ServiceHandle, StackHandle

__all__ = [
    "Database",
    "DatabasePool",
    "Seed",
    "ServiceHandle",
    "StackHandle",
    "database_fixture",
    "service_fixture",
    "stack_fixture",
]

_HOMES = {
    "Database": "databases",
    "DatabasePool": "databases",
    "Seed": "databases",
    "ServiceHandle": "handles",
    "StackHandle": "handles",
    "database_fixture": "fixtures",
    "service_fixture": "fixtures",
    "stack_fixture": "fixtures",
}


def __getattr__(name: str) -> Any:
    # Loaded on first use: pytest imports the plugin module (and so this package) in
    # every run, and suites that never use envkit must not pay for the rest.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'envkit.testing' has no attribute {name!r}")
    from importlib import import_module  # lazy for start-up (see above)

    value = getattr(import_module(f"envkit.testing.{home}"), name)
    globals()[name] = value
    return value
