"""The canonical form of spec objects and the cache keys derived from it.

The canonical form is plain JSON data (dicts, lists, strings, numbers, booleans, None),
stable across runs and machines: mappings are emitted with sorted keys by
:func:`envkit.oci.types.canonical_json`, sets of things are sorted lists, and every object
carries ``"v": FORMAT_VERSION``. Bump the version when the form changes on purpose (the
golden tests under tests/unit/spec/golden pin it); it is the input of build cache keys.
"""

from __future__ import annotations

from envkit.oci.digest import sha256_bytes
from envkit.oci.types import canonical_json

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

#: Version of the canonical form; part of every cache key.
FORMAT_VERSION = 1


class SpecObject:
    """Base of the spec objects: a canonical form and a cache key derived from it."""

    __slots__ = ()

    def canonical(self) -> dict[str, Any]:
        """The stable, JSON-able description of this object (``{"v": 1, "kind": ...}``)."""
        raise NotImplementedError

    def cache_key(self) -> str:
        """``sha256:<hex>`` of the canonical JSON: equal objects have equal keys."""
        return sha256_bytes(canonical_json(self.canonical()))


def versioned(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the format version and the object kind added."""
    return {"v": FORMAT_VERSION, "kind": kind, **body}


def pairs_to_dict(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Sorted key/value pairs (how spec objects store mappings) as a JSON object."""
    return dict(pairs)
