"""``Secret``: a value a build step or a container reads at /run/secrets/<name>.

A Secret holds only where its value comes from (``scheme:location``), never the value:
:meth:`Secret.reveal` reads it through the secret provider of its scheme each time it is
needed. So the value cannot reach a repr, an error message, a canonical form or a cache key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import EnvkitError, SpecError
from envkit.records import Frozen
from envkit.spec import validate
from envkit.spec.canonical import SpecObject, versioned
from envkit.spec.engine import engine

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any, Never, Self

_SCHEME_RE = r"^[a-z][a-z0-9+.-]*$"  # compiled by re on first use


class Secret(Frozen, SpecObject):
    """A secret, by name and source.

    ``Secret(name, source="scheme:location")`` reads through the provider plugin of
    ``scheme`` (built in: ``env`` and ``file``); the constructors below are shortcuts.
    ``name`` is the file name under /run/secrets. With ``required=False`` an absent value
    reveals as ``b""`` instead of raising.
    """

    name: str
    scheme: str
    location: str
    required: bool

    def __init__(self, name: str, source: str, *, required: bool = True, **unknown: Never) -> None:
        validate.reject_unknown(f"Secret({name!r})", unknown, Secret.__init__)
        field = f"Secret({name!r})"
        checked = validate.name(f"{field}.name", name, what="secret name")
        text = validate.string(f"{field}.source", source)
        scheme, sep, location = text.partition(":")
        if not sep or not re.match(_SCHEME_RE, scheme) or not location:
            raise SpecError(
                f"{field}.source",
                "expected 'scheme:location'",
                value=source,
                hint='e.g. "env:DB_PASSWORD" or "file:./db_password.txt"',
            )
        validate.boolean(f"{field}.required", required)
        object.__setattr__(self, "name", checked)
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "location", location)
        object.__setattr__(self, "required", required)

    @classmethod
    def from_env(
        cls, name: str, *, required: bool = True, as_name: str | None = None, **unknown: Never
    ) -> Self:
        """The value of environment variable ``name``, read when needed.

        The secret is named after the variable, unchanged (``/run/secrets/DB_PASSWORD``),
        unless ``as_name`` is given.
        """
        validate.reject_unknown("Secret.from_env", unknown, Secret.from_env)
        var = validate.env_name("Secret.from_env(name)", name)
        return cls(as_name if as_name is not None else var, source=f"env:{var}", required=required)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        required: bool = True,
        **unknown: Never,
    ) -> Self:
        """The bytes of the file at ``path``, read when needed.

        A relative path is relative to the stack file's directory. The secret is named
        after the file's base name (``./db_password.txt`` -> ``db_password.txt``) unless
        ``name`` is given.
        """
        validate.reject_unknown("Secret.from_file", unknown, Secret.from_file)
        text = validate.path("Secret.from_file(path)", path)
        base = Path(text).name
        if name is None and not base:
            raise SpecError(
                "Secret.from_file(path)", "names no file", value=text, hint="pass name=..."
            )
        return cls(name if name is not None else base, source=f"file:{text}", required=required)

    @property
    def source(self) -> str:
        """``scheme:location``: where the value comes from (never the value)."""
        return f"{self.scheme}:{self.location}"

    def reveal(self, base_dir: str | os.PathLike[str] | None = None) -> bytes:
        """Read the value now, through the provider of this secret's scheme.

        ``base_dir`` resolves a relative ``file:`` location (the loader passes the stack
        file's directory). Raises :class:`~envkit.errors.EnvkitError` when a required value
        is absent; returns ``b""`` when an optional one is.
        """
        location = self.location
        if self.scheme == "file" and base_dir is not None and not os.path.isabs(location):
            location = os.path.join(base_dir, location)
        value = engine().read_secret(self.scheme, location)
        if value is not None:
            return value
        if self.required:
            raise EnvkitError(
                f"secret {self.name!r}: {self.source} has no value",
                hint=_absent_hint(self.scheme, location),
            )
        return b""

    def canonical(self) -> dict[str, Any]:
        """Name, source and whether it is required: never the value."""
        return versioned(
            "secret", {"name": self.name, "source": self.source, "required": self.required}
        )

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, source={self.source!r}, required={self.required!r})"


def secret_list(field: str, value: object) -> tuple[Secret, ...]:
    """A list of Secrets, sorted by name; two different secrets may not share a name.

    A wrong item is reported by type only: it may be a secret value passed by mistake.
    """
    if isinstance(value, Secret | str | bytes) or not isinstance(value, Sequence):
        raise SpecError(field, "expected a list of Secret", hint="wrap it: [secret]")
    by_name: dict[str, Secret] = {}
    for item in value:
        if not isinstance(item, Secret):
            raise SpecError(
                field,
                f"expected a Secret, not {type(item).__name__}",
                hint='use Secret.from_env("NAME") or Secret.from_file("path")',
            )
        if by_name.get(item.name, item) != item:
            raise SpecError(
                field,
                f"two different secrets are named {item.name!r}",
                hint="give one another name (as_name= / name=)",
            )
        by_name[item.name] = item
    return tuple(by_name[n] for n in sorted(by_name))


def _absent_hint(scheme: str, location: str) -> str:
    if scheme == "env":
        return f"export {location}=... before running envkit, or pass required=False"
    if scheme == "file":
        return f"create {location}, or pass required=False"
    return "make the value available to its provider, or pass required=False"
