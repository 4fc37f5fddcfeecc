"""Ready services for tests: PostgreSQL, Redis and MariaDB, each with its readiness
check and connection URL, built from Debian packages (no registry needed) or taken
from an official registry image::

    from envkit.recipes import postgres
    from envkit.testing import database_fixture, service_fixture

    pg = service_fixture(postgres(version=15), scope="session")
    postgres_db = database_fixture(pg)
"""

from __future__ import annotations

from envkit.recipes.mariadb import mariadb
from envkit.recipes.postgres import postgres
from envkit.recipes.recipe import Recipe, SqlAdmin
from envkit.recipes.redis import redis

__all__ = ["Recipe", "SqlAdmin", "mariadb", "postgres", "redis"]
