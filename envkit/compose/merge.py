"""Merge compose files into one document, with compose's rules (compose-spec
``13-merge.md``): ``compose.yaml`` + ``compose.override.yaml``, or ``-f a.yaml -f b.yaml``.

- Mappings merge key by key; a later scalar replaces an earlier one.
- Sequences append, except ``command``, ``entrypoint`` and ``healthcheck.test``, which a
  later file replaces, and the unique resources: ``ports`` (by IP, target, published
  port and protocol), ``volumes`` and ``secrets`` (by target), where a later entry
  replaces the earlier one with the same key.
- ``environment``, ``labels``, ``build.args``, ``depends_on`` and a service's
  ``networks`` merge as mappings whichever form (list or mapping) each file uses.
- ``!reset`` clears what earlier files set; ``!override`` replaces it whole.

Each file is interpolated on its own before the merge; relative paths in every file are
relative to the first file's directory, as in compose.
"""

from __future__ import annotations

from typing import Any

from envkit.compose import syntax
from envkit.compose.errors import Reporter
from envkit.compose.yaml_lines import RESET, Map, Seq

_REPLACED = {"command", "entrypoint"}
_AS_MAPPING = {"environment", "labels", "depends_on", "networks"}
_UNIQUE = {"ports", "volumes", "secrets"}


def merge_documents(rep: Reporter, documents: list[Map]) -> Map:
    """The merge of ``documents``, earliest first (the first is changed in place)."""
    merged = documents[0]
    for later in documents[1:]:
        merged = _merge(rep, merged, later, ())
    return merged


def _merge(rep: Reporter, base: Any, later: Any, path: tuple[str, ...]) -> Any:
    if later is RESET or getattr(later, "override", False):
        return later
    where = _field(path)
    if where in _AS_MAPPING or where == "args":
        base, later = _as_mapping(base, where), _as_mapping(later, where)
    if path[-1:] == ("build",):
        base, later = _build_mapping(base), _build_mapping(later)
    if isinstance(base, Map) and isinstance(later, Map):
        for key, value in later.items():
            if key in base and base[key] is not RESET:
                base[key] = _merge(rep, base[key], value, (*path, key))
                if not isinstance(base[key], Map | Seq):
                    base.lines[key] = later.line_of(key)
            else:
                base[key] = value
                base.lines[key] = later.line_of(key)
        return base
    if isinstance(base, Seq) and isinstance(later, Seq):
        if where in _REPLACED or path[-2:] == ("healthcheck", "test"):
            return later
        if where in _UNIQUE and len(path) == 3 and path[0] == "services":
            return _unique(rep, base, later, where, ".".join(path))
        base.extend(later)
        base.lines.extend(later.lines)
        return base
    return later


def _field(path: tuple[str, ...]) -> str:
    """The service attribute ``path`` ends in (``services.web.ports`` -> ``ports``)."""
    if len(path) == 3 and path[0] == "services":
        return path[2]
    if len(path) == 4 and path[0] == "services" and path[2] == "build" and path[3] == "args":
        return "args"
    return ""


def _as_mapping(value: Any, where: str) -> Any:
    """A list form (``- KEY=VALUE``, ``- service``, ``- network``) as its mapping form."""
    if not isinstance(value, Seq):
        return value
    out = Map()
    out.line = value.line
    for i, item in enumerate(value):
        text = str(item)
        if where in ("environment", "labels", "args"):
            key, sep, rest = text.partition("=")
            entry: Any = rest if sep else None
        elif where == "depends_on":
            key, entry = text, Map()
            entry["condition"] = "service_started"
        else:
            key, entry = text, None
        out[key] = entry
        out.lines[key] = value.line_of(i)
    return out


def _build_mapping(value: Any) -> Any:
    if isinstance(value, str):
        out = Map()
        out["context"] = value
        return out
    return value


def _unique(rep: Reporter, base: Seq, later: Seq, where: str, shown: str) -> Seq:
    """``base`` with ``later``'s entries, an entry replacing the one with its key."""
    keys = [_key(rep, where, shown, item, base.line_of(i)) for i, item in enumerate(base)]
    for i, item in enumerate(later):
        key = _key(rep, where, shown, item, later.line_of(i))
        if key in keys:
            at = keys.index(key)
            base[at] = item
            base.lines[at] = later.line_of(i)
        else:
            keys.append(key)
            base.append(item)
            base.lines.append(later.line_of(i))
    return base


def _key(rep: Reporter, where: str, shown: str, item: Any, line: int) -> object:
    """What makes an entry of ``ports``, ``volumes`` or ``secrets`` unique."""
    if where == "ports":
        single = Seq()
        single.append(item)
        single.lines.append(line)
        return frozenset(str(p) for p in syntax.ports(rep, shown, single, line))
    if isinstance(item, Map):
        target = item.get("target") or item.get("source")
        return str(target).rstrip("/") if target is not None else id(item)
    text = str(item)
    if where == "volumes":
        parts = text.split(":")
        return (parts[1] if len(parts) > 1 else parts[0]).rstrip("/")
    return text
