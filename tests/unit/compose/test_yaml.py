"""The compose file's YAML reading (YAML 1.2 scalars, lines, merges, compose's tags) and
Go durations."""

from __future__ import annotations

import pytest

from envkit.compose import durations
from envkit.compose.yaml_lines import RESET, Map, Seq, drop_resets, load
from envkit.errors import StackFileError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # YAML 1.2 core schema, as compose's yaml.v3: only true/false are booleans ...
        ("true", True),
        ("False", False),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        # ... no base-60 numbers (YAML 1.1 reads 22:22 as 1342) ...
        ("22:22", "22:22"),
        ("1:30:00", "1:30:00"),
        # ... no timestamps ...
        ("2001-12-14", "2001-12-14"),
        # ... and the core numbers and nulls.
        ("8080", 8080),
        ("-1", -1),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".inf", float("inf")),
        ("null", None),
        ("~", None),
        ("", None),
        ('"8080"', "8080"),
        ("'no'", "no"),
    ],
)
def test_scalars_follow_yaml_1_2(text: str, value: object) -> None:
    assert load(f"k: {text}\n", "c.yaml")["k"] == value


def test_lines_name_their_file() -> None:
    doc = load("a:\n  - x\n", "dir/c.yaml")
    assert doc.line_of("a").source == "dir/c.yaml"
    assert doc["a"].line_of(0).source == "dir/c.yaml"


def test_lines_of_keys_and_items() -> None:
    doc = load("a:\n  b: 1\n  c:\n    - x\n    - y\n", "c.yaml")
    assert isinstance(doc, Map) and isinstance(doc["a"], Map)
    assert (doc.line_of("a"), doc["a"].line_of("b"), doc["a"].line_of("c")) == (1, 2, 3)
    items = doc["a"]["c"]
    assert isinstance(items, Seq) and items.lines == [4, 5]
    assert doc["a"].line_of("missing") == doc["a"].line == 2


def test_anchors_merges_and_compose_tags() -> None:
    doc = load(
        "x-base: &base\n  image: busybox\n  ports: [80]\n"
        "s:\n  <<: *base\n  ports: !override [81]\n  user: !reset null\n",
        "c.yaml",
    )
    assert doc["s"]["ports"].override and doc["s"]["user"] is RESET
    assert drop_resets(doc)["s"] == {"image": "busybox", "ports": [81]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "c.yaml:3: key 'a' is already defined at line 1"),
        ("a: [1, 2\n", "c.yaml:2: not valid YAML"),
        ("a: b: c\n", "c.yaml:1: not valid YAML"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(StackFileError) as caught:
        load(text, "c.yaml")
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("1m30s", 90.0, "1m30s"),
        ("90s", 90.0, "1m30s"),
        ("500ms", 0.5, "500ms"),
        ("1h", 3600.0, "1h0m0s"),
        ("2.5s", 2.5, "2.5s"),
        ("1h2m3.5s", 3723.5, "1h2m3.5s"),
        ("1.5h", 5400.0, "1h30m0s"),
        ("10us", 10e-6, "10µs"),
        ("0", 0.0, "0s"),
    ],
)
def test_go_durations(text: str, seconds: float, shown: str) -> None:
    parsed = durations.parse(text)
    assert parsed == pytest.approx(seconds)
    assert durations.format_seconds(seconds) == shown


@pytest.mark.parametrize("text", ["30", "", "1x", "s", "1m30", "."])
def test_not_durations(text: str) -> None:
    assert durations.parse(text) is None
