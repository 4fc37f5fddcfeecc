"""The plugin frame, and everything a plugin author needs, in one public namespace.

A plugin is a module (or object) with functions marked ``@envkit.plugins.hookimpl``,
published under the entry-point group ``envkit``::

    # pyproject.toml of a plugin package
    [project.entry-points.envkit]
    mybackend = "envkit_mybackend.plugin"

    # envkit_mybackend/plugin.py
    from envkit.plugins import VolumeBackend, hookimpl

    @hookimpl
    def envkit_volume_backends() -> list[VolumeBackend]:
        return [MyBackend()]

envkit's own parts (the local store, the image sources, the CLI commands) register through
the same hooks. Plugins import from here, :mod:`envkit` and :mod:`envkit.errors` only
(tests/unit/test_architecture.py checks the first-party plugin and the examples): the
modules behind these names may move, these names stay. What this module exports:

- the markers and the manager: :data:`hookimpl`, :data:`hookspec`, :data:`NAME`,
  :func:`get_manager`, :class:`PluginManager`;
- the interfaces plugins implement and the records they return (:mod:`.interfaces`):
  :class:`Command`, :class:`ImageSource`, :class:`SecretProvider`,
  :class:`VolumeBackend`, :class:`MountSource`, :class:`BackendCapabilities`,
  :class:`VolumeInfo`, :class:`SnapshotInfo`, and :class:`DirectoryBackend`, a volume
  backend over plain directories to extend (with :func:`check_name`, :func:`restore_tree`),
  and :func:`override` to mark the methods that implement or override one (PEP 698);
- what image sources and registry-backed backends work with: the local :class:`Store`,
  the OCI records (:class:`Descriptor`, :class:`Manifest`, :class:`Index`,
  :func:`canonical_json`, the ``MT_OCI_*`` media types, :data:`ANNOTATION_REF_NAME`),
  :func:`write_layer`, :func:`sha256_bytes`, :func:`host_platform`, references
  (:class:`Reference`, :func:`parse_reference`), the registry client
  (:class:`RegistryClient`, :class:`RegistryProgress`, :func:`upload_blob`,
  :func:`download_blob`, :func:`fetch_manifest`, :func:`put_manifest`) and
  :func:`envkit_home`.

Every name but :data:`NAME` loads on first use (pluggy itself with the markers), each
from the layer below that holds it.
"""

from __future__ import annotations

NAME = "envkit"

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

    import pluggy

    #: Marks a function as an implementation of an envkit hook.
    hookimpl: pluggy.HookimplMarker
    #: Marks a function as an envkit hook specification (used by hookspecs.py).
    hookspec: pluggy.HookspecMarker

    from envkit.oci.digest import sha256_bytes
    from envkit.oci.layer_writer import write_layer
    from envkit.oci.reference import Reference
    from envkit.oci.reference import parse as parse_reference
    from envkit.oci.types import (
        ANNOTATION_REF_NAME,
        MT_OCI_CONFIG,
        MT_OCI_LAYER_ZSTD,
        MT_OCI_MANIFEST,
        Descriptor,
        Index,
        Manifest,
        canonical_json,
    )
    from envkit.plugins.directory_backend import DirectoryBackend, check_name, restore_tree
    from envkit.plugins.interfaces import (
        BackendCapabilities,
        Command,
        ImageSource,
        MountSource,
        SecretProvider,
        SnapshotInfo,
        VolumeBackend,
        VolumeInfo,
    )
    from envkit.plugins.manager import PluginManager, get_manager
    from envkit.plugins.overrides import override
    from envkit.registry.blobs import download as download_blob
    from envkit.registry.blobs import upload as upload_blob
    from envkit.registry.client import RegistryClient
    from envkit.registry.manifests import fetch as fetch_manifest
    from envkit.registry.manifests import put as put_manifest
    from envkit.registry.progress import Progress as RegistryProgress
    from envkit.settings import home as envkit_home
    from envkit.store.graph import host_platform
    from envkit.store.store import Store

#: Public name -> (module, attribute) of the names loaded on first use.
_LAZY: dict[str, tuple[str, str]] = {
    **{
        name: ("envkit.plugins.interfaces", name)
        for name in (
            "BackendCapabilities",
            "Command",
            "ImageSource",
            "MountSource",
            "SecretProvider",
            "SnapshotInfo",
            "VolumeBackend",
            "VolumeInfo",
        )
    },
    **{
        name: ("envkit.plugins.directory_backend", name)
        for name in ("DirectoryBackend", "check_name", "restore_tree")
    },
    "PluginManager": ("envkit.plugins.manager", "PluginManager"),
    "override": ("envkit.plugins.overrides", "override"),
    "get_manager": ("envkit.plugins.manager", "get_manager"),
    **{
        name: ("envkit.oci.types", name)
        for name in (
            "ANNOTATION_REF_NAME",
            "MT_OCI_CONFIG",
            "MT_OCI_LAYER_ZSTD",
            "MT_OCI_MANIFEST",
            "Descriptor",
            "Index",
            "Manifest",
            "canonical_json",
        )
    },
    "sha256_bytes": ("envkit.oci.digest", "sha256_bytes"),
    "write_layer": ("envkit.oci.layer_writer", "write_layer"),
    "Reference": ("envkit.oci.reference", "Reference"),
    "parse_reference": ("envkit.oci.reference", "parse"),
    "RegistryClient": ("envkit.registry.client", "RegistryClient"),
    "RegistryProgress": ("envkit.registry.progress", "Progress"),
    "upload_blob": ("envkit.registry.blobs", "upload"),
    "download_blob": ("envkit.registry.blobs", "download"),
    "fetch_manifest": ("envkit.registry.manifests", "fetch"),
    "put_manifest": ("envkit.registry.manifests", "put"),
    "envkit_home": ("envkit.settings", "home"),
    "host_platform": ("envkit.store.graph", "host_platform"),
    "Store": ("envkit.store.store", "Store"),
}

__all__ = [
    "ANNOTATION_REF_NAME",
    "MT_OCI_CONFIG",
    "MT_OCI_LAYER_ZSTD",
    "MT_OCI_MANIFEST",
    "NAME",
    "BackendCapabilities",
    "Command",
    "Descriptor",
    "DirectoryBackend",
    "ImageSource",
    "Index",
    "Manifest",
    "MountSource",
    "PluginManager",
    "Reference",
    "RegistryClient",
    "RegistryProgress",
    "SecretProvider",
    "SnapshotInfo",
    "Store",
    "VolumeBackend",
    "VolumeInfo",
    "canonical_json",
    "check_name",
    "download_blob",
    "envkit_home",
    "fetch_manifest",
    "get_manager",
    "hookimpl",
    "hookspec",
    "host_platform",
    "override",
    "parse_reference",
    "put_manifest",
    "restore_tree",
    "sha256_bytes",
    "upload_blob",
    "write_layer",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: a plugin that needs only hookimpl pays for nothing else, and
    # a process that tells no plugin anything (a stack supervisor) holds no pluggy.
    if name in ("hookimpl", "hookspec"):
        import pluggy  # lazy: see above (only where a plugin or hook is defined)

        marker = pluggy.HookimplMarker if name == "hookimpl" else pluggy.HookspecMarker
        globals()[name] = value = marker(NAME)
        return value
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'envkit.plugins' has no attribute {name!r}") from None
    import importlib  # lazy for start-up: the names above are all in this layer or below

    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value
