"""Healthcheck, Volume and Network."""

from __future__ import annotations

import pytest

from envkit import Healthcheck, Network, SpecError, Volume


def test_healthcheck_forms() -> None:
    assert Healthcheck(["pg_isready"]).test == ("CMD", "pg_isready")
    assert Healthcheck(["CMD", "true"]).test == ("CMD", "true")
    assert Healthcheck("curl -f localhost").test == ("CMD-SHELL", "curl -f localhost")
    assert Healthcheck(["NONE"]).disabled
    assert Healthcheck(["true"], interval=1) == Healthcheck(["true"], interval=1.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"test": []}, "Healthcheck.test"),
        ({"test": ["CMD"]}, "Healthcheck.test"),
        ({"test": ["CMD-SHELL", "a", "b"]}, "Healthcheck.test"),
        ({"test": ["NONE", "x"]}, "Healthcheck.test"),
        ({"test": ["ok"], "interval": 0}, "Healthcheck.interval"),
        ({"test": ["ok"], "timeout": -1}, "Healthcheck.timeout"),
        ({"test": ["ok"], "timeout": float("nan")}, "Healthcheck.timeout"),
        ({"test": ["ok"], "retries": 0}, "Healthcheck.retries"),
        ({"test": ["ok"], "retries": 1.5}, "Healthcheck.retries"),
        ({"test": ["ok"], "start_period": -0.1}, "Healthcheck.start_period"),
        ({"test": ["ok"], "intervall": 1}, "Healthcheck.intervall"),
    ],
)
def test_healthcheck_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        Healthcheck(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_volume() -> None:
    vol = Volume("data", options={"size": 10})  # type: ignore[dict-item]
    assert vol.options == (("size", "10"),)
    assert vol.canonical() == {
        "v": 1,
        "kind": "volume",
        "name": "data",
        "backend": "local",
        "options": {"size": "10"},
    }
    with pytest.raises(SpecError, match=r"Volume\('bad/name'\).name"):
        Volume("bad/name")
    with pytest.raises(SpecError) as info:
        Volume("data", backnd="x")  # type: ignore[arg-type]
    assert info.value.hint == "did you mean 'backend'?"


def test_network_subnet_is_normalised_and_validated() -> None:
    assert Network("n", subnet="fd00::/64").subnet == "fd00::/64"
    assert Network("n", subnet="10.89.0.0/24") == Network("n", subnet="10.89.0.0/24")
    for bad in ("10.89.0.1/24", "10.0.0.0/33", "nonsense", "10.0.0.0/31"):
        with pytest.raises(SpecError) as info:
            Network("n", subnet=bad)
        assert info.value.field == "Network('n').subnet"
    with pytest.raises(SpecError):
        Network("n", internal="yes")  # type: ignore[arg-type]
