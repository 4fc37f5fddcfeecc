"""The typed interfaces plugins implement.

Each is a :class:`typing.Protocol`: a plugin needs no envkit base class, only the
attributes and methods below. The ``name`` of each is how users select it
(``Volume(backend="local")``, ``Secret("cmd:...")``, ``Image.load(...)``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from envkit.oci.types import Descriptor
    from envkit.store.layout import Store


@runtime_checkable
class Command(Protocol):
    """A CLI verb: ``envkit <name> ...``.

    ``run`` returns the exit code. It raises :class:`envkit.errors.EnvkitError` for
    bad input; ``main`` prints the message and exits with the error's code.
    """

    name: str
    help: str

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add this command's arguments to its sub-parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Carry the command out."""


@runtime_checkable
class ImageSource(Protocol):
    """Provides base images of one kind (``"ref"``, ``"oci-archive"``, ``"debian"``...).

    ``provide`` makes sure the image described by ``params`` is in ``store`` and returns
    its manifest descriptor. ``params`` is the canonical form of the base from the spec
    (for ``Image.load("x.tar")``: ``{"path": "/abs/x.tar"}``).
    """

    kind: str

    def provide(self, params: Mapping[str, Any], store: Store) -> Descriptor:
        """Put the image in the store (if needed) and return its manifest descriptor."""


@runtime_checkable
class SecretProvider(Protocol):
    """Reads secret values of one scheme (``"env"``, ``"file"``, ``"cmd"``...).

    ``read`` is called only when a value is needed (a build step or a container start),
    never at spec construction. It returns ``None`` when the secret is absent.
    """

    scheme: str

    def read(self, location: str) -> bytes | None:
        """The secret's value, or ``None`` when it does not exist."""


@runtime_checkable
class VolumeBackend(Protocol):
    """Stores named volumes (``"local"``, ``"tmpfs"``...)."""

    name: str

    def create(self, volume: str, options: Mapping[str, str]) -> None:
        """Create ``volume`` if it does not exist; reject unknown options."""

    def remove(self, volume: str) -> None:
        """Remove ``volume`` and its data."""

    def mountpoint(self, volume: str) -> Path:
        """The host directory a container bind-mounts for ``volume``."""

    def list(self) -> list[str]:
        """The names of the volumes this backend holds."""
