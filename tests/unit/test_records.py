"""envkit.records: records declared as dataclasses are, without importing dataclasses."""

from __future__ import annotations

import ast
import copy
import pickle
from pathlib import Path
from typing import ClassVar

import pytest

import envkit
from envkit.records import (
    Frozen,
    FrozenInstanceError,
    Record,
    Value,
    asdict,
    field,
    fields,
    is_record,
    replace,
)


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


# The immutable kind carries what were frozen dataclasses: slotted, never a tuple.


class Spec(Value):
    name: str
    tags: tuple[str, ...] = ()
    note: str = field(default="", compare=False, repr=False)


class Version(Value, order=True):
    major: int
    minor: int = 0


class Checked(Value):
    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low above high")


class Parsed(Frozen):
    text: str
    words: tuple[str, ...]

    def __init__(self, text: str) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "words", tuple(text.split()))


class Counted(Record):
    name: str
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seen.append(self.name)


def test_a_value_is_slotted_and_not_a_tuple() -> None:
    s = Spec("a", ("x",))
    assert not isinstance(s, tuple)
    assert not hasattr(s, "__dict__")
    assert is_record(s) and is_record(Spec) and not is_record(("a",)) and not is_record(Value)


def test_assigning_or_deleting_raises_frozen_instance_error() -> None:
    s = Spec("a")
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'name'"):
        s.name = "b"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError, match="cannot delete field 'name'"):
        del s.name
    with pytest.raises(AttributeError):  # FrozenInstanceError is an AttributeError
        setattr(s, "other", 1)  # noqa: B010 (the point is a name that is not a field)
    assert s.name == "a"


def test_equality_and_hash_skip_fields_with_compare_false() -> None:
    assert Spec("a", note="x") == Spec("a", note="y")
    assert hash(Spec("a", note="x")) == hash(Spec("a", note="y")) == hash(("a", ()))
    assert Spec("a") != Spec("b")
    assert len({Spec("a"), Spec("a", note="z"), Spec("b")}) == 2


def test_repr_leaves_out_fields_with_repr_false() -> None:
    assert repr(Spec("a", ("x",), note="hidden")) == "Spec(name='a', tags=('x',))"


def test_order_true_orders_values_of_one_class_by_their_fields() -> None:
    assert Version(1, 2) < Version(1, 3) < Version(2) and Version(2) >= Version(1, 9)
    assert sorted([Version(2), Version(1, 5), Version(1)]) == [
        Version(1),
        Version(1, 5),
        Version(2),
    ]
    with pytest.raises(TypeError):
        assert Version(1) < Point(1)  # type: ignore[operator]
    with pytest.raises(TypeError):
        assert Point(1) < Point(2)  # type: ignore[operator]  # not ordered without order=True


def test_replace_fields_and_asdict_as_dataclasses_gives_them() -> None:
    s = Spec("a", ("x",))
    assert replace(s, tags=("y",)) == Spec("a", ("y",)) and s.tags == ("x",)
    with pytest.raises(TypeError, match="'nope'"):
        replace(s, nope=1)
    assert [f.name for f in fields(Spec)] == ["name", "tags", "note"]
    assert [f.compare for f in fields(s)] == [True, True, False]
    with pytest.raises(TypeError):
        fields(("a",))
    tagged = Tagged("t", {"k": "v"})
    assert asdict(tagged) == {"name": "t", "labels": {"k": "v"}}
    assert asdict(tagged)["labels"] is not tagged.labels
    assert asdict(Report(["a"], 2)) == {"found": ["a"], "count": 2}

    class Nested(Value):
        points: tuple[Point, ...]
        named: dict[str, list[Point]]

    assert asdict(Nested((Point(1),), {"a": [Point(2, 3)]})) == {
        "points": ({"x": 1, "y": 0},),
        "named": {"a": [{"x": 2, "y": 3}]},
    }
    with pytest.raises(TypeError):
        asdict(Spec)


def test_post_init_runs_after_init_and_after_replace() -> None:
    assert Checked(1, 2).high == 2
    with pytest.raises(ValueError, match="low above high"):
        Checked(3, 2)
    with pytest.raises(ValueError, match="low above high"):
        replace(Checked(1, 2), low=5)
    assert Counted("a").seen == ["a"]


def test_a_class_with_its_own_init_keeps_it() -> None:
    p = Parsed("a b c")
    assert p.words == ("a", "b", "c")
    assert p == Parsed("a b c") and hash(p) == hash(Parsed("a b c"))
    assert repr(p) == "Parsed(text='a b c', words=('a', 'b', 'c'))"
    with pytest.raises(FrozenInstanceError):
        p.text = "d"


@pytest.mark.parametrize(
    "value",
    [Spec("a", ("x",), note="n"), Version(1, 2), Checked(1, 2), Parsed("a b"), Counted("c")],
    ids=lambda v: type(v).__name__,
)
def test_pickle_copy_and_deepcopy_keep_every_field(value: object) -> None:
    for again in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert type(again) is type(value)
        assert again == value
        assert all(getattr(again, f.name) == getattr(value, f.name) for f in fields(value))


def test_no_module_of_envkit_imports_dataclasses() -> None:
    # The choice is made once (envkit/records.py says why, with numbers): a dataclass
    # here would bring back dataclasses + inspect at start-up and ~350 us per class.
    root = Path(envkit.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if any(name.split(".")[0] == "dataclasses" for name in names):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert found == [], "use envkit.records (Value, Frozen, Record, field, replace, ...)"
