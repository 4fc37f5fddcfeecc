"""Spec objects as JSON data, for a ``replace`` request on the control socket.

``up`` of a stack that is up sends the new :class:`~envkit.spec.Stack` to its
supervisor. It goes as plain JSON: each spec object is ``{"type": NAME, "fields":
{...}}`` with its record fields, tuples are ``{"tuple": [...]}`` and paths ``{"path":
"..."}``. Only the spec classes listed in :func:`spec_types` are rebuilt, field by field
and without running their constructors (the sender's constructors validated them), so
what arrives can make nothing but spec objects: no code runs, unlike ``pickle.loads``.
The round trip is exact: the decoded stack is equal to the sent one, with the same
``base_dir`` and the same canonical form (and so the same recreate keys).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from envkit import records
from envkit.errors import SpecDataError
from envkit.spec import (
    Stack,
    bases,
    healthcheck,
    image,
    mounts,
    network,
    ports,
    readiness,
    secret,
    service,
    stack,
    steps,
    volume,
)


@functools.cache
def spec_types() -> dict[str, type]:
    """The classes :func:`decode` rebuilds, by name: every spec record class."""
    classes: list[type] = [
        stack.Stack,
        service.Service,
        image.Image,
        healthcheck.Healthcheck,
        mounts.Mount,
        network.Network,
        ports.PortMapping,
        readiness.Ready,
        secret.Secret,
        volume.Volume,
        bases.FromRef,
        bases.Scratch,
        bases.Debian,
        bases.Archive,
        bases.Dockerfile,
        steps.Run,
        steps.Copy,
        steps.Env,
        steps.Workdir,
        steps.User,
        steps.Expose,
        steps.Entrypoint,
        steps.Cmd,
        steps.Label,
        steps.SetHealthcheck,
    ]
    return {f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}": cls for cls in classes}


def encode(value: object) -> Any:
    """The JSON data of ``value``: a spec object, or what its fields hold."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, Path):
        return {"path": str(value)}
    name = _name_of(type(value))
    if name is None:
        raise TypeError(f"a {type(value).__name__} is not part of a spec")
    fields = records.fields(value)
    return {"type": name, "fields": {f.name: encode(getattr(value, f.name)) for f in fields}}


def decode(data: Any, where: str = "stack") -> Any:
    """The value :func:`encode` gave ``data`` for; :class:`SpecDataError` naming the
    place (``stack.services[2].healthcheck``) of anything else."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if not isinstance(data, dict):
        raise SpecDataError(f"{where}: unexpected {type(data).__name__} in spec data")
    if set(data) == {"tuple"} and isinstance(data["tuple"], list):
        return tuple(decode(v, f"{where}[{i}]") for i, v in enumerate(data["tuple"]))
    if set(data) == {"path"} and isinstance(data["path"], str):
        return Path(data["path"])
    if set(data) != {"type", "fields"} or not isinstance(data["fields"], dict):
        raise SpecDataError(f"{where}: expected a spec object, a tuple or a path")
    cls = spec_types().get(str(data["type"]))
    if cls is None:
        raise SpecDataError(f"{where}: {data['type']!r} is not a spec class")
    names = [f.name for f in records.fields(cls)]
    given = data["fields"]
    if sorted(given) != sorted(names):
        raise SpecDataError(
            f"{where}: {data['type']} takes fields {', '.join(names)}, "
            f"got {', '.join(sorted(given)) or 'none'}"
        )
    obj: object = object.__new__(cls)
    for name in names:
        object.__setattr__(obj, name, decode(given[name], f"{where}.{name}"))
    return obj


def decode_stack(data: Any, name: str) -> Stack:
    """The :class:`~envkit.spec.Stack` of ``data``, which must be named ``name``."""
    stack = decode(data)
    if not isinstance(stack, Stack) or stack.name != name:
        raise SpecDataError(f"replace: expected a Stack named {name!r}")
    return stack


def _name_of(cls: type) -> str | None:
    for name, known in spec_types().items():
        if known is cls:
            return name
    return None
