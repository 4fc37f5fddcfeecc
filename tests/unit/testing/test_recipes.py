"""Recipes and the plugin's pure parts: URLs, version checks, SQL, non-root servers on
tmpfs, option parsing, unique names, and a plugin that costs nothing when unused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from envkit.errors import EnvkitError, SpecError
from envkit.recipes import mariadb, postgres, redis
from envkit.recipes.postgres import PostgresAdmin, quote_identifier
from envkit.recipes.recipe import Recipe
from envkit.spec.bases import FromRef
from envkit.testing.plugin import Options
from envkit.testing.session import ServiceSession

pytest_plugins = ["pytester"]


def test_urls_quote_credentials_and_name_the_database() -> None:
    pg = postgres(user="app", password="p@ss/word", database="shop")
    assert pg.url("127.0.0.1", 5555) == "postgresql://app:p%40ss%2Fword@127.0.0.1:5555/shop"
    assert pg.url("h", 1, "test_main_3") == "postgresql://app:p%40ss%2Fword@h:1/test_main_3"
    assert redis().url("127.0.0.1", 6380) == "redis://127.0.0.1:6380/0"
    assert mariadb().url("h", 3307) == "mysql://root:mariadb@h:3307/test"


@pytest.mark.parametrize("recipe", [postgres(), redis(), mariadb()], ids=lambda r: r.name)
def test_debian_servers_run_as_their_own_user_with_a_check_and_a_free_port(
    recipe: Recipe,
) -> None:
    service = recipe.service
    assert service.user not in (None, "root", "0")
    check = service.healthcheck
    # fast while the server starts (docker's start interval), calm once it is up
    assert check is not None and check.start_interval <= 0.1 and check.start_period > 0
    assert [(p.host_port, p.container_port) for p in service.ports] == [(0, recipe.port)]


def test_postgres_data_lives_on_a_tmpfs() -> None:
    service = postgres().service
    assert service.tmpfs == ("/var/lib/postgresql/data",)
    assert service.command is not None and "fsync=off" in service.command[-1]


def test_debian_versions_are_checked_with_the_way_out() -> None:
    with pytest.raises(SpecError, match="ships PostgreSQL 15") as info:
        postgres(version=16)
    assert 'image="postgres:16"' in str(info.value.hint)
    with pytest.raises(SpecError, match="Redis"):
        redis(version=6)
    with pytest.raises(SpecError, match="identifier"):
        postgres(user="robert'); drop")


def test_registry_images_take_the_version_from_the_tag() -> None:
    pg = postgres(image="postgres:16")
    base = pg.service.image.base
    assert isinstance(base, FromRef) and str(base.ref).endswith("postgres:16")
    assert pg.admin is not None and "STRATEGY FILE_COPY" in pg.admin.create("a", "t")
    old = postgres(image="postgres:14-alpine")
    assert old.admin is not None and "STRATEGY" not in old.admin.create("a", "t")
    assert dict(pg.service.env)["POSTGRES_PASSWORD"] == "postgres"


def test_postgres_sql_quotes_names_and_closes_connections() -> None:
    admin = PostgresAdmin(("psql",), "postgres", 15)
    assert admin.create("test_gw0_1", "envkit_template_1") == (
        'CREATE DATABASE "test_gw0_1" TEMPLATE "envkit_template_1" STRATEGY FILE_COPY'
    )
    assert admin.drop("x") == 'DROP DATABASE IF EXISTS "x" WITH (FORCE)'
    assert "ALLOW_CONNECTIONS false" in admin.seal("t") and "pg_terminate_backend" in admin.seal(
        "t"
    )
    assert quote_identifier('a"b') == '"a""b"'
    assert admin.client("db")[-2:] == ["-d", "db"]


def test_stack_names_differ_per_fixture_worker_and_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    session = ServiceSession(Options())
    first, second = session.stack_name("Web_Session"), session.stack_name("Web_Session")
    assert first.startswith("pt-web-session-gw3-") and first != second
    from envkit.spec import Stack
    from envkit.spec.service import Service

    Stack(first, services=[Service("s", image="busybox")])  # a valid stack name


def test_options_from_flags_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nenvkit_keep = true\nenvkit_home = homes/x\nenvkit_timeout = 9\n")
    options = Options.from_config(pytester.parseconfig())
    assert options.keep and options.timeout == 9.0
    assert options.home == str(pytester.path / "homes" / "x")
    flagged = Options.from_config(pytester.parseconfig("--envkit-timeout", "3"))
    assert flagged.timeout == 3.0


def test_plugin_imports_nothing_until_used() -> None:
    code = (
        "import sys, warnings; warnings.simplefilter('error'); import envkit.testing.plugin; "
        "print(sorted(m for m in sys.modules if m.startswith('envkit')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # envkit's own __init__ loads only the error classes and what it hands down (the
    # names of the built-in plugins and the spec objects' engine; docs/dev/architecture.md),
    # and the plugin's own records (envkit.records, no dataclasses).
    expected = (
        "['envkit', 'envkit.builtin', 'envkit.builtin.engine', 'envkit.errors', "
        "'envkit.records', 'envkit.testing', 'envkit.testing.plugin', 'envkit.wiring']"
    )
    assert out.stdout.strip() == expected
    assert out.stderr == ""


def test_a_service_without_a_recipe_says_what_it_lacks() -> None:
    from envkit.testing.handles import ServiceHandle

    handle = ServiceHandle(running=_Running())  # type: ignore[arg-type]
    with pytest.raises(EnvkitError, match="no connection URL"):
        _ = handle.url
    with pytest.raises(EnvkitError, match="container port"):
        handle.port()
    with pytest.raises(EnvkitError, match="no databases to hand out"):
        handle.databases()


class _Running:
    name, stack = "web", "pt-web-main-1"
