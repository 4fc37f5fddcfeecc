"""The typed interfaces plugins implement.

Each is a :class:`typing.Protocol`: a plugin needs no envkit base class, only the
attributes and methods below. The ``name`` of each is how users select it
(``Volume(backend="local")``, ``Secret("cmd:...")``, ``Image.load(...)``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from envkit.records import Value, field

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import argparse

    from envkit.oci.types import Descriptor
    from envkit.store.store import Store


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


class MountSource(Value):
    """What a container mounts for a volume; the container runtime applies it.

    ``kind="bind"``: bind-mount the host path ``source``. ``kind="tmpfs"``: mount a
    fresh tmpfs, with ``options`` ``size`` (bytes) and ``mode`` (octal); an unprivileged
    user can only mount one inside the container's own mount namespace, so a tmpfs
    volume is private to each container and gone when it stops.
    """

    kind: Literal["bind", "tmpfs"]
    source: str = ""
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def bind(cls, path: str | os.PathLike[str]) -> MountSource:
        """A bind mount of the host directory ``path``."""
        return cls("bind", os.fspath(path))

    @classmethod
    def tmpfs(cls, size: int = 0, mode: int = 0o1777) -> MountSource:
        """A fresh tmpfs of at most ``size`` bytes (0: the kernel's default)."""
        return cls("tmpfs", "", {"size": str(size), "mode": f"{mode:o}"})


class BackendCapabilities(Value):
    """What a backend's volumes can do; the conformance suite and the stack read it.

    ``scope`` is docker's: ``"local"`` (this machine) or ``"global"`` (the same volume
    on every machine). ``shared``: containers mounting the volume at once see each
    other's writes. ``persistent``: data outlives an unmount (and ``envkit down``); a
    stack removes non-persistent volumes at ``down``. ``host_path``: ``mount`` gives a
    bind source the caller may read and write on the host. ``snapshots``: ``snapshot``
    and ``restore`` work. ``size_limit``: the ``size`` option is enforced.
    """

    scope: Literal["local", "global"] = "local"
    shared: bool = True
    persistent: bool = True
    host_path: bool = True
    snapshots: bool = True
    size_limit: bool = False


class VolumeInfo(Value):
    """One volume as its backend describes it (docker's ``volume inspect``)."""

    name: str
    backend: str
    options: Mapping[str, str] = field(default_factory=dict)
    #: The host directory holding the data, when there is one.
    mountpoint: str = ""
    #: Bytes the data takes (apparent sizes, hard links counted once); -1 when unknown.
    size: int = -1


class SnapshotInfo(Value):
    """A point-in-time copy of a volume's data, made by :meth:`VolumeBackend.snapshot`.

    ``digest`` names the content (sha256 of the snapshot's layer tar, equal for equal
    data); ``location`` says where the backend keeps it (a file, ``registry/repo:tag``).
    """

    volume: str
    name: str
    digest: str
    size: int
    location: str


@runtime_checkable
class VolumeBackend(Protocol):
    """Stores named volumes (``"local"``, ``"tmpfs"``...); docker's volume plugin API
    (``Create``, ``Remove``, ``Mount``, ``Unmount``, ``Get``, ``List``,
    ``Capabilities``) plus validation, snapshots and size reporting.

    Errors are :class:`envkit.errors.VolumeError` (a missing volume:
    :class:`~envkit.errors.VolumeNotFoundError`) and, for bad options,
    :class:`envkit.errors.SpecError` naming the option. Every method may be called from
    several processes at once (two ``envkit`` commands, two containers starting).
    """

    name: str

    def capabilities(self) -> BackendCapabilities:
        """What this backend's volumes can do."""

    def validate(self, options: Mapping[str, str]) -> None:
        """Raise :class:`~envkit.errors.SpecError` for an unknown or bad option, before
        anything is created (``envkit up`` calls it for every volume first)."""

    def create(self, volume: str, options: Mapping[str, str]) -> None:
        """Create ``volume`` if it does not exist (idempotent); reject bad options."""

    def remove(self, volume: str) -> None:
        """Remove ``volume`` and its data; its snapshots are kept."""

    def mount(self, volume: str, mount_id: str) -> MountSource:
        """Make ``volume`` ready for one container (``mount_id``: a unique id of that
        use) and say what the runtime mounts."""

    def unmount(self, volume: str, mount_id: str) -> None:
        """The container ``mount_id`` stopped using ``volume``."""

    def get(self, volume: str) -> VolumeInfo:
        """Describe ``volume``; :class:`~envkit.errors.VolumeNotFoundError` if absent."""

    def list(self) -> list[str]:
        """The names of the volumes this backend holds, sorted."""

    def size(self, volume: str) -> int:
        """Bytes the volume's data takes (-1 when the backend cannot tell)."""

    def snapshot(self, volume: str, name: str) -> SnapshotInfo:
        """Copy the volume's current data as snapshot ``name`` (replacing one of that
        name)."""

    def restore(self, volume: str, name: str) -> None:
        """Replace the volume's data with snapshot ``name``'s, all or nothing."""

    def mountpoint(self, volume: str) -> Path:
        """The host directory a container bind-mounts for ``volume``.

        Kept for callers written before :meth:`mount`; backends without a host
        directory raise :class:`~envkit.errors.VolumeError`.
        """
