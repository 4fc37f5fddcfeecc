"""Records declared as dataclasses are, without importing :mod:`dataclasses`.

A record class lists its fields as annotations, with defaults and
``field(default_factory=...)`` where it needs them, exactly as a dataclass does; type
checkers read it as one (:pep:`681` ``dataclass_transform``). :class:`Value` is an
immutable, hashable, slotted object (a frozen dataclass: assigning raises
:class:`FrozenInstanceError`; ``order=True`` as a class keyword orders it);
:class:`Record` is a mutable report filled in as work goes on (a plain ``@dataclass``,
slotted). :func:`replace`, :func:`fields`, :func:`asdict` and :func:`is_record` stand in
for their :mod:`dataclasses` namesakes. Every record class of envkit is one of these two
(``tests/unit/test_records.py`` fails on an ``import dataclasses`` under ``envkit/``).

:class:`Frozen` is the immutable kind for a class that writes its own ``__init__``
(what ``@dataclass(frozen=True, init=False)`` was: ``Stack``, ``Service``, ...).

Why not :mod:`dataclasses` (chosen once, for the whole package): a dataclass writes its
methods as source text and runs it through ``exec``, ~350 us per frozen class, and
importing it imports :mod:`inspect`; a class here is made by a metaclass from shared
functions, ~13 us. Measured with all 121 dataclasses converted (Python 3.11, medians of
20 alternating runs against the same tree with dataclasses): a cold
``envkit build --no-cache`` of a small scratch image 138 -> 119 ms (-14%), the same
build fully cached 100 -> 83 ms (-17%), ``import envkit.spec`` 66 -> 51 ms (-22%),
``envkit --help`` 98 -> 97 ms (pluggy still imports :mod:`inspect`), ``import envkit``
unchanged (13 ms: it loads no record class). The image built is byte-identical, and
the spec's canonical form and cache keys do not change (the golden tests pin them).
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

    _R = TypeVar("_R")
else:

    def dataclass_transform(**_options: object) -> Callable[[type], type]:
        """At run time a no-op: type checkers read the real one."""
        return lambda cls: cls


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) a field of a :class:`Value`, as
    :class:`dataclasses.FrozenInstanceError`."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """A field of a record class, as :func:`fields` lists them: its ``name``, its
    ``default`` or ``default_factory``, and whether it takes part in equality, hashing
    and ordering (``compare``) and in the repr (``repr``)."""

    __slots__ = ("compare", "default", "default_factory", "name", "repr")

    def __init__(
        self,
        default: Any,
        default_factory: Callable[[], Any] | None,
        compare: bool = True,
        repr: bool = True,
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    compare: bool = True,
    repr: bool = True,
) -> Any:
    """A field's default (``default``), or a fresh one per record (``default_factory``),
    and whether equality, hashing and ordering (``compare``) and the repr (``repr``)
    look at it, as :func:`dataclasses.field` gives them."""
    if default is not MISSING and default_factory is not None:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr)


def _is_classvar(annotation: object) -> bool:
    return str(annotation).startswith(("ClassVar", "typing.ClassVar"))


def _collect(name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> list[Field]:
    """The fields (the bases' first, in order), their defaults taken out of
    ``namespace`` (a slot cannot also be a class attribute)."""
    found: dict[str, Field] = {}
    for base in reversed(bases):
        for inherited in getattr(base, "__record_fields__", ()):
            found[inherited.name] = inherited
    for field_name, annotation in namespace.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = namespace.get(field_name, MISSING)
        if isinstance(value, property):
            value = MISSING  # the class reads the field through its own property
        elif value is not MISSING:
            del namespace[field_name]
        made = value if isinstance(value, Field) else Field(value, None)
        made.name = field_name
        found[field_name] = made
    fields = list(found.values())
    seen_default = False
    for f in fields:
        has_default = f.default is not MISSING or f.default_factory is not None
        if seen_default and not has_default:
            raise TypeError(
                f"{name}: field {f.name!r} without a default follows one with a default"
            )
        seen_default = seen_default or has_default
    return fields


def _bind(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """The field values for a call ``cls(*args, **kwargs)``, as a dataclass binds them."""
    fields: tuple[Field, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    if len(args) > len(fields):
        raise TypeError(
            f"{cls.__name__}() takes {len(fields)} positional arguments but {len(args)} were given"
        )
    values = list(args)
    for f in fields[: len(args)]:
        if f.name in kwargs:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {f.name!r}")
    for f in fields[len(args) :]:
        if f.name in kwargs:
            values.append(kwargs.pop(f.name))
        elif f.default_factory is not None:
            values.append(f.default_factory())
        elif f.default is not MISSING:
            values.append(f.default)
        else:
            raise TypeError(f"{cls.__name__}() missing required argument: {f.name!r}")
    if kwargs:
        unknown = sorted(kwargs)[0]
        raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {unknown!r}")
    return values


def _compared(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name in obj._COMPARED)


def _ordering(op: str) -> Callable[[Any, Any], Any]:
    def compare(self: Any, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return getattr(_compared(self), op)(_compared(other))

    compare.__name__ = op
    return compare


_ORDER = {op: _ordering(op) for op in ("__lt__", "__le__", "__gt__", "__ge__")}


def _frozen_hash(self: Any) -> int:
    return hash(_compared(self))


class _RecordMeta(type):
    """Makes a record class from its annotations: ``__slots__`` of its own fields,
    ``__record_fields__``, ``FIELDS`` (the names), ``__match_args__``, and with
    ``order=True`` the ordering methods. Nothing is generated as source text."""

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _RecordMeta:
        if not any(isinstance(base, _RecordMeta) for base in bases):
            return super().__new__(mcls, name, bases, namespace, **kwargs)  # Value, Record
        inherited = {n for base in bases for n in getattr(base, "FIELDS", ())}
        fields = _collect(name, bases, namespace)
        names = tuple(f.name for f in fields)
        # A class may name more slots itself (``"__dict__"`` for a cached_property).
        extra = tuple(namespace.get("__slots__", ()))
        own = tuple(n for n in names if n not in inherited and n not in namespace)
        namespace["__slots__"] = own + tuple(n for n in extra if n not in own)
        namespace["__record_fields__"] = tuple(fields)
        namespace["FIELDS"] = names
        namespace["_COMPARED"] = tuple(f.name for f in fields if f.compare)
        namespace.setdefault("__match_args__", names)
        if kwargs.get("order"):
            for op, method in _ORDER.items():
                namespace.setdefault(op, method)
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        if "__eq__" in namespace and "__hash__" not in namespace and cls._FROZEN:  # type: ignore[attr-defined]
            cls.__hash__ = _frozen_hash  # type: ignore[assignment]  # as a frozen dataclass keeps it
        return cls


class _Base(metaclass=_RecordMeta):
    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()
    __record_fields__: ClassVar[tuple[Field, ...]] = ()
    _COMPARED: ClassVar[tuple[str, ...]] = ()
    _FROZEN: ClassVar[bool] = False

    def __init_subclass__(cls, *, order: bool = False, init: bool = True, **kwargs: Any) -> None:
        # ``order=True`` asks for ordering (done by the metaclass); ``init=False`` says
        # the class writes its own ``__init__`` (which wins over the generic one anyway).
        super().__init_subclass__(**kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = _bind(type(self), args, kwargs)
        for name, value in zip(self.FIELDS, values, strict=True):
            object.__setattr__(self, name, value)
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _compared(self) == _compared(other)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__ if f.repr
        )
        return f"{type(self).__qualname__}({inner})"

    def fields(self) -> dict[str, Any]:
        """The fields by name, in ``FIELDS`` order."""
        return {name: getattr(self, name) for name in self.FIELDS}


class Frozen(_Base):
    """An immutable record that writes its own ``__init__`` (setting its fields with
    ``object.__setattr__``), which its subclasses inherit: what
    ``@dataclass(frozen=True, init=False)`` was. Everything else is :class:`Value`'s;
    type checkers see a plain class (a ``dataclass_transform`` base would give every
    subclass a generated ``__init__`` instead of the inherited one).
    """

    __slots__ = ()
    _FROZEN: ClassVar[bool] = True

    if not TYPE_CHECKING:  # type checkers know fields are frozen, and no other names

        def __setattr__(self, name: str, value: Any) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(_compared(self))

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.FIELDS, state, strict=True):
            object.__setattr__(self, name, value)

    def to_json(self) -> dict[str, Any]:
        """The fields by name (subclasses convert what JSON cannot hold as it is)."""
        return self.fields()

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (what ``dataclasses.replace`` does)."""
        copy: Self = replace(self, **changes)
        return copy


@dataclass_transform(
    eq_default=True, order_default=False, frozen_default=True, field_specifiers=(field,)
)
class Value(Frozen):
    """An immutable record: fields by name (in ``__slots__``), no ``__dict__``.

    Subclasses declare their fields as annotations (with defaults), as a frozen
    dataclass does. Assigning to a field raises :class:`FrozenInstanceError`. Two
    values are equal when they are of the same class and their compared fields are
    equal; a value hashes its compared fields; ``class X(Value, order=True)`` orders
    values of one class by their fields, as ``@dataclass(order=True)`` does.
    ``__post_init__``, when defined, runs after the fields are set.
    """

    __slots__ = ()


@dataclass_transform(eq_default=True, order_default=False, field_specifiers=(field,))
class Record(_Base):
    """A mutable record (a report filled in as work goes on): fields declared as a
    dataclass declares them, kept in ``__slots__``; equality and repr from them, not
    hashable (as a ``@dataclass``)."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable


def is_record(obj: object) -> bool:
    """Whether ``obj`` is a record class or an instance of one (``dataclasses.is_dataclass``)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return issubclass(cls, _Base) and cls not in (Frozen, Value, Record)


def fields(obj: object) -> tuple[Field, ...]:
    """The :class:`Field` s of a record or record class, in order (``dataclasses.fields``)."""
    found: tuple[Field, ...] | None = getattr(obj, "__record_fields__", None)
    if found is None:
        raise TypeError(f"{obj!r} is not a record or a record class")
    return found


def replace(obj: _R, **changes: Any) -> _R:
    """A new record of ``obj``'s class with ``changes`` applied, built through its
    ``__init__`` (and ``__post_init__``), as :func:`dataclasses.replace`."""
    names = [f.name for f in fields(obj)]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{**{name: getattr(obj, name) for name in names}, **changes})


def asdict(obj: Any) -> dict[str, Any]:
    """The fields of a record by name, recursing into records, lists, tuples and dicts,
    as :func:`dataclasses.asdict` (other values are kept as they are, not copied)."""
    if not is_record(obj) or isinstance(obj, type):
        raise TypeError("asdict() should be called on record instances")
    return _asdict(obj)  # type: ignore[no-any-return]


def _asdict(value: Any) -> Any:
    if isinstance(value, _Base):
        return {name: _asdict(getattr(value, name)) for name in value.FIELDS}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*[_asdict(v) for v in value])
    if isinstance(value, (list, tuple)):
        return type(value)(_asdict(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_asdict(k), _asdict(v)) for k, v in value.items())
    return value
