"""envkit.values.Value: the dataclass-free immutable record."""

from __future__ import annotations

import copy
import pickle

import pytest

from envkit.values import Value


class Point(Value):
    __slots__ = ()
    FIELDS = ("x", "y")
    x: int
    y: int

    def __new__(cls, x: int, y: int = 0) -> Point:
        return tuple.__new__(cls, (x, y))


class Other(Value):
    __slots__ = ()
    FIELDS = ("x", "y")

    def __new__(cls, x: int, y: int = 0) -> Other:
        return tuple.__new__(cls, (x, y))


def test_fields_by_name_and_immutable() -> None:
    p = Point(1, 2)
    assert (p.x, p.y) == (1, 2)
    assert p.fields() == {"x": 1, "y": 2}
    assert repr(p) == "Point(x=1, y=2)"
    with pytest.raises(AttributeError):
        p.x = 3


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
