"""A package's public names loaded on first use (:pep:`562`), one way for every package.

A package that re-exports names from its modules would import all of them with itself;
instead it lists where each name lives and gets ``__getattr__`` and ``__dir__`` from
:func:`attributes`: a name loads its own module when first read, then stays in the
package's namespace. Type checkers see the names through imports under
``TYPE_CHECKING``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:  # and not collections.abc either: spec's users start with this module
    from collections.abc import Callable, Iterable, Mapping, MutableMapping


def attributes(
    package: str, homes: Mapping[str, str], namespace: MutableMapping[str, object],
    public: Iterable[str],
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:  # fmt: skip
    """``__getattr__`` and ``__dir__`` for ``package`` (its ``globals()`` is
    ``namespace``, its ``__all__`` ``public``): each name of ``homes`` (name -> module)
    is loaded from its module on first use."""
    names = tuple(public)

    def getattr_(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        from importlib import import_module  # lazy for start-up: a name loads its own module

        value = getattr(import_module(home), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *names})

    return getattr_, dir_
