"""compose's ``stop_signal``: read into ``Service.stop_signal``, written back, and a
warning in the Kubernetes export."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envkit.compose import load, to_compose
from envkit.compose.export_images import ImageFacts
from envkit.compose.kubernetes import stack_to_kubernetes
from envkit.errors import StackFileError
from envkit.spec import Service, Stack

DIGEST = "sha256:" + "c" * 64

#: compose-spec/compose-spec 170098ba07d9f53c383a41bfd4c5166b0a4529a6, 05-services.md:1978
#: ("If unset containers are stopped by Compose by sending SIGTERM").
SPEC_EXAMPLE = "stop_signal: SIGUSR1\n"


def _project(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  a:\n    image: busybox\n    {extra}  b:\n    image: busybox\n")
    return path


def test_the_spec_example_is_read_without_a_warning(tmp_path: Path) -> None:
    project = load(_project(tmp_path, SPEC_EXAMPLE), environ={})
    assert project.stack["a"].stop_signal == "SIGUSR1"
    assert project.stack["b"].stop_signal is None  # SIGTERM (or the image's)
    assert not [w for w in project.warnings if "stop_signal" in w]


@pytest.mark.parametrize(
    ("text", "stored"), [("QUIT", "SIGQUIT"), ("3", "SIGQUIT"), ("sigint", "SIGINT")]
)
def test_names_and_numbers(tmp_path: Path, text: str, stored: str) -> None:
    project = load(_project(tmp_path, f"stop_signal: {text}\n"), environ={})
    assert project.stack["a"].stop_signal == stored


def test_a_bad_signal_names_the_line_and_key(tmp_path: Path) -> None:
    with pytest.raises(StackFileError) as caught:
        load(_project(tmp_path, "stop_signal: SIGNOPE\n"), environ={})
    message = str(caught.value)
    assert "stop_signal" in message and "invalid signal: SIGNOPE" in message
    assert "compose.yaml:" in message


def test_round_trip(tmp_path: Path) -> None:
    first = load(_project(tmp_path, "stop_signal: quit\n"), environ={})
    form = to_compose(first)
    assert form["services"]["a"]["stop_signal"] == "SIGQUIT"
    assert "stop_signal" not in form["services"]["b"]
    again = tmp_path / "again"
    again.mkdir()
    (again / "compose.yaml").write_text(yaml.safe_dump(form, sort_keys=False))
    assert load(again / "compose.yaml", environ={}).stack == first.stack


def test_kubernetes_export_warns() -> None:
    svc = Service("db", image=f"db@{DIGEST}", stop_signal="SIGQUIT")
    out = stack_to_kubernetes(
        Stack("s", services=[svc]), {"db": ImageFacts(f"registry.example.org/t/db@{DIGEST}")}
    )
    assert [w.key for w in out.warnings] == ["stop_signal"]
    assert "STOPSIGNAL" in str(out.warnings[0])
