"""envkit.records: records declared as dataclasses are, without importing dataclasses."""

from __future__ import annotations

import copy
import pickle
from typing import ClassVar

import pytest

from envkit.records import Record, Value, field


class Point(Value):
    x: int
    y: int = 0


class Other(Value):
    x: int
    y: int = 0


class Tagged(Value):
    KIND: ClassVar[str] = "tagged"
    name: str
    labels: dict[str, str] = field(default_factory=dict)


class Report(Record):
    found: list[str] = field(default_factory=list)
    count: int = 0


def test_fields_by_name_and_immutable() -> None:
    p = Point(1, 2)
    assert (p.x, p.y) == (1, 2)
    assert Point.FIELDS == ("x", "y")
    assert p.fields() == {"x": 1, "y": 2}
    assert repr(p) == "Point(x=1, y=2)"
    with pytest.raises(AttributeError):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.z = 3  # type: ignore[attr-defined]


def test_construction_binds_as_a_dataclass_does() -> None:
    assert Point(1) == Point(x=1) == Point(1, 0) == Point(y=0, x=1)
    with pytest.raises(TypeError, match=r"Point\(\) missing required argument: 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="takes 2 positional arguments but 3 were given"):
        Point(1, 2, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Point(1, z=2)  # type: ignore[call-arg]


def test_default_factory_gives_each_record_its_own() -> None:
    one, two = Tagged("a"), Tagged("b")
    assert one.labels == {} and one.labels is not two.labels
    assert Tagged.FIELDS == ("name", "labels")  # a ClassVar is not a field
    assert Tagged.KIND == "tagged"


def test_a_required_field_after_a_default_is_refused() -> None:
    with pytest.raises(TypeError, match="field 'b' without a default follows"):

        class Bad(Value):
            a: int = 1
            b: int  # type: ignore[misc]  # what the test refuses


def test_equality_needs_the_same_class() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Other(1, 2)
    assert Point(1, 2) != (1, 2)
    assert (1, 2) != Point(1, 2)  # noqa: SIM300 (the tuple on the left is the point)
    assert len({Point(1, 2), Point(1, 2), Other(1, 2)}) == 2


def test_replace_and_unknown_field() -> None:
    p = Point(1, 2)
    assert p.replace(y=5) == Point(1, 5)
    assert p == Point(1, 2)
    with pytest.raises(TypeError, match="'z'"):
        p.replace(z=1)


def test_pickle_and_copy_rebuild_through_new() -> None:
    p = Point(1, 2)
    assert pickle.loads(pickle.dumps(p)) == p
    assert type(pickle.loads(pickle.dumps(p))) is Point
    assert copy.deepcopy(p) == p
    assert copy.copy(p) == p


def test_a_record_is_mutable_slotted_and_unhashable() -> None:
    report = Report()
    report.found.append("a")
    report.count += 1
    assert report == Report(["a"], 1) and report != Report()
    assert Report().found is not Report().found
    assert not hasattr(report, "__dict__")
    assert repr(report) == "Report(found=['a'], count=1)"
    with pytest.raises(TypeError):
        hash(report)
