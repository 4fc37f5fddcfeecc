"""The ``oci`` volume backend: local directories, snapshots pushed to a registry."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from envkit.errors import EnvkitError, ReferenceError_, SpecError, VolumeError
from envkit.plugins import (
    BackendCapabilities,
    DirectoryBackend,
    Reference,
    SnapshotInfo,
    Store,
    check_name,
    override,
    restore_tree,
)
from envkit.plugins import parse_reference as parse
from envkit_oci_volumes import artifact


class OciVolumes(DirectoryBackend):
    """Volumes as directories under ``$ENVKIT_HOME/oci-volumes/volumes``; a snapshot
    named ``NAME`` is the artifact ``<repository>:NAME`` in the registry.

    Options: ``repository`` (required: ``host[:port]/path``, where snapshots go) and
    ``seed`` (a snapshot name: a new volume starts with that snapshot's data). The
    registry's credentials are the ones ``envkit login`` stored; loopback registries are
    spoken to over plain HTTP, as for images.
    """

    name = "oci"
    option_names = frozenset({"repository", "seed"})

    def __init__(self, base: Path | None = None) -> None:
        self._base = base
        super().__init__()

    @property
    def base(self) -> Path:
        """Where this backend keeps volumes, local snapshot copies and blobs."""
        if self._base is not None:
            return self._base
        from envkit.plugins import envkit_home

        return envkit_home() / "oci-volumes"

    @property
    @override
    def root(self) -> Path:
        return self.base / "volumes"

    @property
    @override
    def snapshots_root(self) -> Path:
        return self.base / "snapshots"

    @property
    def store(self) -> Store:
        """A private OCI layout the artifacts' blobs pass through."""
        return Store(self.base / "store")

    @override
    def capabilities(self) -> BackendCapabilities:
        """Local directories (shared, persistent) whose snapshots are global."""
        return BackendCapabilities(scope="local", snapshots=True)

    @override
    def validate(self, options: Mapping[str, str]) -> None:
        """``repository`` is required; ``seed`` is a snapshot name."""
        super().validate(options)
        if "repository" not in options:
            raise SpecError(
                "Volume.options",
                "the oci backend needs option 'repository'",
                hint='e.g. options={"repository": "127.0.0.1:5000/team/seed"}',
            )

    @override
    def check_option(self, key: str, value: str) -> None:
        if key == "repository":
            self._repository(value)
        elif key == "seed":
            check_name("Volume.options['seed']", value)

    @staticmethod
    def _repository(value: str) -> Reference:
        try:
            ref = parse(value, default_tag=False)
        except ReferenceError_ as exc:
            raise SpecError(
                "Volume.options['repository']", exc.message, value=value, hint=exc.hint
            ) from None
        if ref.tag or ref.digest or "/" not in value:
            raise SpecError(
                "Volume.options['repository']",
                "expected host[:port]/path without a tag or digest",
                value=value,
            )
        return ref

    def _ref(self, volume: str, name: str) -> Reference:
        check_name("snapshot name", name)
        return self._repository(self.options(volume)["repository"]).with_tag(name)

    @override
    def create(self, volume: str, options: Mapping[str, str]) -> None:
        """Create the volume; a new one with a ``seed`` starts with that snapshot."""
        new = volume not in self.list()
        super().create(volume, options)
        if new and options.get("seed"):
            try:
                self.restore(volume, options["seed"])
            except EnvkitError:
                self.remove(volume)  # a volume without its seed must not look ready
                raise

    @override
    def snapshot(self, volume: str, name: str) -> SnapshotInfo:
        """Write the data as a layer tar and push it as ``<repository>:<name>``."""
        local = super().snapshot(volume, name)
        ref = self._ref(volume, name)
        try:
            artifact.push(Path(local.location), ref, volume, self.size(volume), self.store)
        except EnvkitError as exc:
            raise VolumeError(
                f"cannot push snapshot {name!r} of volume {volume!r} to {ref}: {exc.message}",
                hint=exc.hint,
            ) from None
        return SnapshotInfo(volume, name, local.digest, local.size, str(ref))

    @override
    def restore(self, volume: str, name: str) -> None:
        """Pull ``<repository>:<name>`` and make it the volume's data."""
        path = self._existing(volume)
        ref = self._ref(volume, name)
        layer = artifact.pull(ref, self.store)
        with self.store.open_blob(layer.digest, verify=True) as stream:
            restore_tree(stream, path)
