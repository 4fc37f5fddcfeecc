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
