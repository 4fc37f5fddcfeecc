"""``Healthcheck.start_interval``: validation, and a canonical form (cache key) that stays
what it was for every check that does not set it."""

from __future__ import annotations

import pytest

from envkit.errors import SpecError
from envkit.spec import Healthcheck, Image, Service
from envkit.spec.healthcheck import DEFAULT_START_INTERVAL


def test_the_default_is_dockers_five_seconds() -> None:
    # moby daemon/health.go: defaultStartInterval = 5 * time.Second
    # (moby/moby b985e2313a8676e18072b442911fc8f64f17d440)
    assert DEFAULT_START_INTERVAL == 5.0
    assert Healthcheck("true").start_interval == 5.0


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "1s", True, None])
def test_start_interval_must_be_a_positive_number(value: object) -> None:
    with pytest.raises(SpecError) as caught:
        Healthcheck("true", start_interval=value)  # type: ignore[arg-type]
    assert "Healthcheck.start_interval" in str(caught.value)


def test_start_interval_is_stored_as_seconds() -> None:
    check = Healthcheck("true", start_period=60, start_interval=0.02)
    assert check.start_interval == 0.02
    assert isinstance(Healthcheck("true", start_interval=2).start_interval, float)


def test_canonical_form_has_start_interval_only_when_set() -> None:
    plain = Healthcheck(["pg_isready"], interval=0.5, retries=60)
    assert "start_interval" not in plain.canonical()
    assert Healthcheck(["pg_isready"], interval=0.5, retries=60, start_interval=5).canonical() == (
        plain.canonical()
    )
    assert plain.cache_key() == Healthcheck(["pg_isready"], interval=0.5, retries=60).cache_key()
    fast = Healthcheck(["pg_isready"], interval=0.5, retries=60, start_interval=0.1)
    assert fast.canonical()["start_interval"] == 0.1
    assert fast.cache_key() != plain.cache_key()
    assert fast != plain


def test_the_pinned_cache_key_of_a_service_without_start_interval() -> None:
    """A check that does not set start_interval keeps the canonical form it had before
    the field existed (these keys are tests/unit/spec/golden's, spelled out here)."""
    check = Healthcheck("true", interval=1, timeout=2, retries=3, start_period=4)
    assert check.canonical() == {
        "v": 1,
        "kind": "healthcheck",
        "test": ["CMD-SHELL", "true"],
        "interval": 1.0,
        "timeout": 2.0,
        "retries": 3,
        "start_period": 4.0,
    }
    service = Service("db", image=Image.scratch(), healthcheck=check)
    assert "start_interval" not in service.canonical()["healthcheck"]


def test_unknown_keyword_still_refused() -> None:
    with pytest.raises(SpecError):
        Healthcheck("true", start_intervall=1)  # type: ignore[arg-type]
