"""Service volumes: ``{Volume("data"): "/var/lib/data", "./conf": "/etc/app:ro"}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envkit.errors import SpecError
from envkit.records import Value
from envkit.spec import validate
from envkit.spec.volume import Volume

_PATH_PREFIXES = ("/", "./", "../", "~")


class Mount(Value):
    """A named volume or a host path (bind mount) mounted at ``target``."""

    source: Volume | str
    target: str
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        """Whether the source is a host path."""
        return isinstance(self.source, str)

    def canonical(self) -> dict[str, Any]:
        if isinstance(self.source, Volume):
            kind, source = "volume", self.source.name
        else:
            kind, source = "bind", self.source
        return {"type": kind, "source": source, "target": self.target, "read_only": self.read_only}


def parse_mounts(field: str, value: object) -> tuple[Mount, ...]:
    """``{source: "/target[:ro]"}`` as Mounts sorted by target.

    A string source that starts with ``/``, ``./``, ``../`` or ``~`` (or is ``.``) is a
    host path, kept as given; a bare name is a named volume (``Volume(name)``), as in
    compose.
    """
    if not isinstance(value, Mapping):
        raise SpecError(
            field,
            "expected a mapping {Volume or host path: container path}",
            value=value,
            hint='e.g. {Volume("data"): "/data", "./conf": "/etc/app:ro"}',
        )
    mounts: dict[str, Mount] = {}
    for source, spec in value.items():
        item = f"{field}[{_label(source)!r}]"
        text = validate.string(item, spec)
        target, mode = text, "rw"
        if text.endswith((":ro", ":rw")):
            target, mode = text[:-3], text[-2:]
        target = validate.mount_target(item, target)
        if target in mounts:
            raise SpecError(field, "two mounts share a target", value=target)
        mounts[target] = Mount(_source(item, source), target, mode == "ro")
    return tuple(mounts[t] for t in sorted(mounts))


def _label(source: object) -> object:
    return source.name if isinstance(source, Volume) else source


def _source(field: str, source: object) -> Volume | str:
    if isinstance(source, Volume):
        return source
    if hasattr(source, "__fspath__"):
        return validate.path(field, source)
    text = validate.string(field, source)
    if text == "." or text.startswith(_PATH_PREFIXES):
        return text
    return Volume(validate.name(field, text, what="volume name"))
