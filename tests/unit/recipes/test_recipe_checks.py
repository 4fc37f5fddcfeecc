"""The recipes' health checks run often only while the server starts, and the Debian
PostgreSQL stops with an immediate shutdown."""

from __future__ import annotations

import pytest

from envkit.recipes import checks, mariadb, postgres, redis
from envkit.recipes.recipe import Recipe
from envkit.spec import Healthcheck
from envkit.stack import health

RECIPES = {
    "postgres": lambda: postgres(),
    "postgres-image": lambda: postgres(image="postgres:16"),
    "redis": lambda: redis(),
    "redis-image": lambda: redis(image="redis:7"),
    "mariadb": lambda: mariadb(),
    "mariadb-image": lambda: mariadb(image="mariadb:11"),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_checks_are_fast_while_starting_and_calm_after(name: str) -> None:
    recipe: Recipe = RECIPES[name]()
    check = recipe.service.healthcheck
    assert isinstance(check, Healthcheck)
    assert check.start_interval == checks.START_INTERVAL == 0.02
    assert check.start_period == checks.START_PERIOD >= 30
    assert check.interval == checks.SETTLED_INTERVAL >= 5
    assert check.retries == checks.RETRIES
    tracker = health.HealthTracker(check, started=0.0)
    assert tracker.next_run(0.0, 0.001) == pytest.approx(0.02)  # starting: 20 ms
    tracker.record(True, "", 0.5)
    assert tracker.next_run(0.5, 0.51) == pytest.approx(5.5)  # healthy: 5 s


def test_stop_signals() -> None:
    assert postgres().service.stop_signal == "SIGQUIT"
    assert postgres(image="postgres:16").service.stop_signal is None  # the image's SIGINT
    assert redis().service.stop_signal is None
    assert mariadb().service.stop_signal is None
