"""Immutable records without :mod:`dataclasses`.

:class:`Value` is a tuple underneath (immutable, hashable when its fields are, cheap to
build) with its fields readable by name. It replaces ``@dataclass(frozen=True)`` on
start-up paths: importing :mod:`dataclasses` costs ~10 ms (it imports :mod:`inspect`),
and each decorated class ~0.5 ms more to create, where a :class:`Value` subclass costs
a few microseconds.
"""

from __future__ import annotations

from operator import itemgetter

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any, Self


class Value(tuple[object, ...]):
    """An immutable record: a tuple underneath, fields by name.

    Subclasses list their field names in ``FIELDS`` (read-only properties are made from
    it), declare ``__slots__ = ()`` and construct themselves in ``__new__`` with
    ``tuple.__new__(cls, (field, ...))`` in ``FIELDS`` order. Two values are equal when
    they are of the same class and their fields are equal (never equal to a plain tuple).
    """

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()

    def __init_subclass__(cls) -> None:
        for index, name in enumerate(cls.FIELDS):
            if name not in cls.__dict__:  # a subclass may define a field's property itself
                setattr(cls, name, property(itemgetter(index)))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __getnewargs__(self) -> tuple[Any, ...]:
        # pickle and copy rebuild a value through __new__ with its fields (a tuple
        # subclass would otherwise be handed one tuple argument).
        return tuple(self)

    def fields(self) -> dict[str, Any]:
        """The fields by name, in ``FIELDS`` order."""
        return dict(zip(self.FIELDS, self, strict=True))

    def to_json(self) -> dict[str, Any]:
        """The fields by name (subclasses convert what JSON cannot hold as it is)."""
        return self.fields()

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (what ``dataclasses.replace`` does)."""
        unknown = set(changes) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        return type(self)(**{**self.fields(), **changes})

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self.fields().items())
        return f"{type(self).__name__}({inner})"


class Record:
    """A mutable record (a report filled in as work goes on): ``__slots__`` named in
    ``FIELDS``, equality and repr from them. Subclasses set ``__slots__ = FIELDS = (...)``
    and the fields in ``__init__``."""

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        """The fields by name, in ``FIELDS`` order."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self.fields().items())
        return f"{type(self).__name__}({inner})"
