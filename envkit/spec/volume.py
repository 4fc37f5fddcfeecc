"""``Volume``: named storage that outlives containers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Never

from envkit.records import Frozen
from envkit.spec import validate
from envkit.spec.canonical import SpecObject, pairs_to_dict, versioned


class Volume(Frozen, SpecObject):
    """A named volume, stored by a volume backend plugin (``"local"`` by default).

    ``options`` are passed to the backend, which rejects the ones it does not know when
    the volume is created (not here: building a spec does no I/O).

    ``anonymous``: compose's anonymous volume (``- /path``): it lives as long as the
    stack's containers (kept when a service's container is recreated, removed by
    ``down``), and ``envkit config`` shows it without its name.
    """

    name: str
    backend: str
    options: tuple[tuple[str, str], ...]
    anonymous: bool

    def __init__(
        self,
        name: str,
        *,
        backend: str = "local",
        options: Mapping[str, str] | None = None,
        anonymous: bool = False,
        **unknown: Never,
    ) -> None:
        field = f"Volume({name!r})"
        validate.reject_unknown(field, unknown, Volume.__init__)
        object.__setattr__(self, "name", validate.name(f"{field}.name", name, what="volume name"))
        object.__setattr__(
            self, "backend", validate.name(f"{field}.backend", backend, what="backend name")
        )
        object.__setattr__(self, "options", validate.str_mapping(f"{field}.options", options or {}))
        object.__setattr__(self, "anonymous", validate.boolean(f"{field}.anonymous", anonymous))

    def canonical(self) -> dict[str, Any]:
        """Name, backend and options (and ``anonymous`` when it is)."""
        body: dict[str, Any] = {
            "name": self.name,
            "backend": self.backend,
            "options": pairs_to_dict(self.options),
        }
        if self.anonymous:  # only then: a named volume keeps the key it always had
            body["anonymous"] = True
        return versioned("volume", body)
