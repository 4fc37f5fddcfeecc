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

A service's ``extends`` (:func:`resolve_extends`) merges the service it names with its
own keys by the same rules.

Each file is interpolated on its own before the merge; relative paths in every file are
relative to the first file's directory, as in compose.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
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


def resolve_extends(rep: Reporter, doc: Map, read: Callable[[Path], Map], base_dir: Path) -> None:
    """Replace every service's ``extends`` by the merge of the service it names (in
    this document, or in ``extends.file``, read with ``read`` and relative to
    ``base_dir``) with the service's own keys, as compose does; ``extends`` of the
    base are followed first. A cycle is an error."""
    services = doc.get("services")
    if not isinstance(services, Map):
        return
    done: dict[tuple[str, str], Map] = {}

    def resolve(source: str, pool: Map, name: str, chain: tuple[tuple[str, str], ...]) -> Map:
        key = (source, name)
        if key in done:
            return done[key]
        if key in chain:
            names = " -> ".join(n for _, n in (*chain, key))
            raise rep.error(pool.line_of(name), "services", f"extends forms a cycle: {names}")
        body = pool.get(name)
        if not isinstance(body, Map):
            raise rep.error(pool.line, "services", f"no service {name!r} to extend")
        spec = body.get("extends")
        if spec is None:
            done[key] = body
            return body
        where = f"services.{name}.extends"
        line = body.line_of("extends")
        if isinstance(spec, str):
            target, file = spec, None
        elif isinstance(spec, Map) and isinstance(spec.get("service"), str):
            target, file = spec["service"], spec.get("file")
        else:
            raise rep.error(line, where, "expected a service name or {service:, file:}")
        if file is None:
            base_pool, base_source = pool, source
        else:
            path = Path(str(file))
            path = path if path.is_absolute() else base_dir / path
            found = read(path).get("services")
            base_pool = found if isinstance(found, Map) else Map()
            base_source = str(path)
        if target not in base_pool:
            raise rep.error(line, where, f"no service {target!r} in {file or 'this file'}")
        base = copy.deepcopy(resolve(base_source, base_pool, target, (*chain, key)))
        own = Map()
        own.line = body.line
        for k, v in body.items():
            if k != "extends":
                own[k] = v
                own.lines[k] = body.line_of(k)
        merged: Map = _merge(rep, base, own, ("services", name))
        merged.pop("extends", None)
        pool[name] = merged
        done[key] = merged
        return merged

    for name in list(services):
        resolve("", services, name, ())
