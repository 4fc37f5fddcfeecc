"""compose's ``healthcheck.start_interval``: read, written back, exported to Kubernetes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from envkit.compose import load, to_compose
from envkit.compose.export_images import ImageFacts
from envkit.compose.kubernetes import stack_to_kubernetes
from envkit.spec import Healthcheck, Service, Stack

DIGEST = "sha256:" + "c" * 64

#: compose-spec/compose-spec 170098ba07d9f53c383a41bfd4c5166b0a4529a6, 05-services.md:1015,
#: the healthcheck example (``start_interval`` since compose v2.20.2).
SPEC_EXAMPLE = """\
healthcheck:
  test: ["CMD", "curl", "-f", "http://localhost"]
  interval: 1m30s
  timeout: 10s
  retries: 3
  start_period: 40s
  start_interval: 5s
"""


def _load(tmp_path: Path, healthcheck: str) -> Healthcheck:
    body = textwrap.indent(healthcheck, "    ")
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  a:\n    image: busybox\n{body}")
    project = load(path, environ={})
    assert not [w for w in project.warnings if "start_interval" in w]
    check = project.stack["a"].healthcheck
    assert check is not None
    return check


def test_the_spec_example_is_read(tmp_path: Path) -> None:
    check = _load(tmp_path, SPEC_EXAMPLE)
    assert check == Healthcheck(
        ["CMD", "curl", "-f", "http://localhost"],
        interval=90,
        timeout=10,
        retries=3,
        start_period=40,
        start_interval=5,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20ms", 0.02), ("1s", 1.0), ("1m30s", 90.0), ("0", 5.0), ("0s", 5.0)],
)
def test_start_interval_durations(tmp_path: Path, text: str, seconds: float) -> None:
    """Go durations; 0 is docker's default (timeoutWithDefault in moby daemon/health.go)."""
    check = _load(
        tmp_path, f"healthcheck:\n  test: 'true'\n  start_period: 1m\n  start_interval: {text}\n"
    )
    assert check.start_interval == seconds


def test_a_bad_start_interval_names_the_key(tmp_path: Path) -> None:
    from envkit.errors import StackFileError

    with pytest.raises(StackFileError) as caught:
        _load(tmp_path, "healthcheck:\n  test: 'true'\n  start_interval: soon\n")
    assert "services.a.healthcheck.start_interval: invalid duration 'soon'" in str(caught.value)


def test_round_trip_keeps_start_interval_and_adds_none_by_default(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(
        "services:\n  a:\n    image: busybox\n    healthcheck:\n      test: 'true'\n"
        "      start_period: 1m\n      start_interval: 20ms\n"
        "  b:\n    image: busybox\n    healthcheck:\n      test: 'true'\n"
    )
    first = load(path, environ={})
    form = to_compose(first)
    assert form["services"]["a"]["healthcheck"]["start_interval"] == "20ms"
    assert "start_interval" not in form["services"]["b"]["healthcheck"]
    again = tmp_path / "again"
    again.mkdir()
    (again / "compose.yaml").write_text(yaml.safe_dump(form, sort_keys=False))
    assert load(again / "compose.yaml", environ={}).stack == first.stack


def _k8s(check: Healthcheck, restart: str = "always") -> dict[str, object]:
    svc = Service("db", image=f"db@{DIGEST}", healthcheck=check, restart=restart)
    stack = Stack("s", services=[svc])
    facts = {"db": ImageFacts(f"registry.example.org/t/db@{DIGEST}")}
    out = stack_to_kubernetes(stack, facts)
    container: dict[str, object] = out.objects[-1]["spec"]["template"]["spec"]["containers"][0]
    return container


def test_kubernetes_start_interval_is_a_startup_probe() -> None:
    check = Healthcheck(
        ["pg_isready"], interval=10, timeout=5, retries=3, start_period=60, start_interval=0.02
    )
    container = _k8s(check)
    startup = container["startupProbe"]
    assert startup == {
        "exec": {"command": ["pg_isready"]},
        "periodSeconds": 1,  # Kubernetes' smallest period
        "timeoutSeconds": 5,
        # docker gives up after the start period and then retries failures at interval
        "failureThreshold": 60 + 3 * 10,
    }
    readiness = container["readinessProbe"]
    assert isinstance(readiness, dict)
    assert "initialDelaySeconds" not in readiness  # the startup probe holds it back
    assert readiness["periodSeconds"] == 10
    assert container["livenessProbe"] == readiness


def test_kubernetes_without_start_interval_keeps_the_initial_delay() -> None:
    container = _k8s(Healthcheck(["pg_isready"], interval=10, start_period=60))
    assert "startupProbe" not in container
    readiness = container["readinessProbe"]
    assert isinstance(readiness, dict)
    assert readiness["initialDelaySeconds"] == 60
    # a start interval without a start period does nothing in docker, nor here
    assert "startupProbe" not in _k8s(Healthcheck(["pg_isready"], start_interval=1))
