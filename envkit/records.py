"""Records declared as dataclasses are, without importing :mod:`dataclasses`.

A record class lists its fields as annotations, with defaults and
``field(default_factory=...)`` where it needs them, exactly as a dataclass does; type
checkers read it as one (:pep:`681` ``dataclass_transform``). :class:`Value` is
immutable and hashable (a tuple underneath, fields readable by name, ordered as a
tuple); :class:`Record` is a mutable report filled in as work goes on (``__slots__``
named after its fields).

Why not :mod:`dataclasses`: ``envkit pull`` (warm) loads 20 record classes and nothing
else imports dataclasses there. Importing it (it imports :mod:`inspect`) and making
those classes frozen dataclasses measured +7.8 ms of 98 ms (8%, 30 paired runs); a
frozen slots dataclass costs ~350 us to create, a class here ~13 us (a warm pull with
these classes is within noise of the hand-written tuples they replace). ``envkit run``
loads no record class, and ``envkit --help`` imports dataclasses anyway (the plugin
manager).
"""

from __future__ import annotations

from operator import itemgetter

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, Self, dataclass_transform
else:

    def dataclass_transform(**_options: object) -> Callable[[type], type]:
        """At run time a no-op: type checkers read the real one."""
        return lambda cls: cls


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """What :func:`field` returns: a field's default or default factory."""

    __slots__ = ("default", "default_factory")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None) -> None:
        self.default = default
        self.default_factory = default_factory


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field's default (``default``), or a fresh one per record (``default_factory``),
    as :func:`dataclasses.field` gives them."""
    if default is not MISSING and default_factory is not None:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory)


def _fields(
    name: str, bases: tuple[type, ...], namespace: dict[str, Any]
) -> tuple[tuple[str, ...], dict[str, Field]]:
    """The field names (the bases' first) and their defaults, taken out of
    ``namespace`` (a slot cannot also be a class attribute)."""
    names: list[str] = []
    defaults: dict[str, Field] = {}
    for base in reversed(bases):
        for inherited in getattr(base, "FIELDS", ()):
            if inherited not in names:
                names.append(inherited)
        defaults.update(getattr(base, "_DEFAULTS", {}))
    for field_name, annotation in namespace.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        if field_name not in names:
            names.append(field_name)
        if field_name in namespace and not isinstance(namespace[field_name], property):
            value = namespace.pop(field_name)
            defaults[field_name] = value if isinstance(value, Field) else Field(value, None)
    required_after_default = [
        n
        for i, n in enumerate(names)
        if n not in defaults and any(m in defaults for m in names[:i])
    ]
    if required_after_default:
        raise TypeError(
            f"{name}: field {required_after_default[0]!r} without a default follows "
            "one with a default"
        )
    return tuple(names), defaults


def _bind(
    cls: type,
    names: tuple[str, ...],
    defaults: dict[str, Field],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> list[Any]:
    """The field values for a call ``cls(*args, **kwargs)``, as a dataclass binds them."""
    if len(args) > len(names):
        raise TypeError(
            f"{cls.__name__}() takes {len(names)} positional arguments but {len(args)} were given"
        )
    values = list(args)
    for name in names[: len(args)]:
        if name in kwargs:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
    for name in names[len(args) :]:
        if name in kwargs:
            values.append(kwargs.pop(name))
            continue
        default = defaults.get(name)
        if default is None:
            raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
        factory = default.default_factory
        values.append(default.default if factory is None else factory())
    if kwargs:
        unknown = sorted(kwargs)[0]
        raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {unknown!r}")
    return values


class _ValueMeta(type):
    """Makes a :class:`Value` subclass from its annotations: ``__slots__ = ()``,
    ``FIELDS``, the defaults, and a read-only property per field."""

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _ValueMeta:
        if not any(isinstance(base, _ValueMeta) for base in bases):
            return super().__new__(mcls, name, bases, namespace, **kwargs)  # Value itself
        names, defaults = _fields(name, bases, namespace)
        namespace.setdefault("__slots__", ())
        namespace["FIELDS"], namespace["_DEFAULTS"] = names, defaults
        for index, field_name in enumerate(names):
            if field_name not in namespace:  # a class may define a field's property itself
                namespace[field_name] = property(itemgetter(index))
        return super().__new__(mcls, name, bases, namespace, **kwargs)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Value(tuple[object, ...], metaclass=_ValueMeta):
    """An immutable record: a tuple underneath, fields by name.

    Subclasses declare their fields as annotations (with defaults), as a frozen
    dataclass does. Two values are equal when they are of the same class and their
    fields are equal (never equal to a plain tuple); a value is hashable when its
    fields are.
    """

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()
    _DEFAULTS: ClassVar[dict[str, Field]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        return tuple.__new__(cls, _bind(cls, cls.FIELDS, cls._DEFAULTS, args, kwargs))

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


class _RecordMeta(type):
    """Makes a :class:`Record` subclass from its annotations: ``__slots__`` of its own
    fields, ``FIELDS`` and the defaults."""

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _RecordMeta:
        if not any(isinstance(base, _RecordMeta) for base in bases):
            return super().__new__(mcls, name, bases, namespace, **kwargs)  # Record itself
        inherited = {n for base in bases for n in getattr(base, "FIELDS", ())}
        names, defaults = _fields(name, bases, namespace)
        namespace.setdefault("__slots__", tuple(n for n in names if n not in inherited))
        namespace["FIELDS"], namespace["_DEFAULTS"] = names, defaults
        return super().__new__(mcls, name, bases, namespace, **kwargs)


@dataclass_transform(field_specifiers=(field,))
class Record(metaclass=_RecordMeta):
    """A mutable record (a report filled in as work goes on): fields declared as a
    dataclass declares them, kept in ``__slots__``; equality and repr from them, not
    hashable."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()
    _DEFAULTS: ClassVar[dict[str, Field]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = _bind(type(self), self.FIELDS, self._DEFAULTS, args, kwargs)
        for name, value in zip(self.FIELDS, values, strict=True):
            setattr(self, name, value)

    def fields(self) -> dict[str, Any]:
        """The fields by name, in ``FIELDS`` order."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or type(other) is not type(self):
            return False
        return self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self.fields().items())
        return f"{type(self).__name__}({inner})"
