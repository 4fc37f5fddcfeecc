"""The ``debian`` image source: ``Image.debian(suite, packages, variant, mirror)``.

``provide`` verifies the suite's Release and Packages index, resolves the package set,
and returns a cached image when one was built from exactly that set (same suite,
variant, mirror, and every package's version and sha256): only the small signed Release
is fetched then. Otherwise it downloads the missing .debs, bootstraps
(:mod:`.bootstrap`) and stores a one-layer image, kept in the store without a tag.

Caches, under ``$ENVKIT_HOME/cache/debian/``: ``sha256/`` (indexes and .debs),
``resolved/<key>.json`` (a package set per index and request), ``images/<key>``
(the manifest digest per package set).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envkit.builtin.debian.packages import Package, package_from_json, package_to_json
from envkit.errors import EnvkitError, SpecError
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import ImageSource
from envkit.plugins.overrides import override

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.builtin.debian.fetch import Mirror
    from envkit.builtin.debian.release import IndexFile
    from envkit.oci.types import Descriptor
    from envkit.store.store import Store

ARCH = "amd64"
#: Bumped whenever the bootstrap's output changes for the same package set.
FORMAT = 1
_log = logging.getLogger("envkit.builtin.debian")


class DebianSource(ImageSource):
    """Debian root file systems from a Debian mirror, without a registry.

    ``params``: ``{"suite": "bookworm", "packages": [...], "variant": "minbase",
    "mirror": None}`` (the canonical form of :class:`envkit.spec.bases.Debian`).
    """

    kind = "debian"

    @override
    def provide(self, params: Mapping[str, Any], store: Store) -> Descriptor:
        """Bootstrap the image (or find it cached); its manifest descriptor."""
        suite = _text(params, "suite", "bookworm")
        variant = _text(params, "variant", "minbase")
        packages = params.get("packages") or []
        if not isinstance(packages, list | tuple) or not all(isinstance(p, str) for p in packages):
            raise SpecError("Image.debian(packages)", "expected a list of names", value=packages)
        return build_image(suite, sorted(set(packages)), variant, params.get("mirror"), store)


def build_image(
    suite: str, requested: Sequence[str], variant: str, mirror_param: object, store: Store
) -> Descriptor:
    """:meth:`DebianSource.provide` with typed arguments."""
    # lazy for start-up: this module loads with every plugin manager (downward)
    from envkit.builtin.debian.fetch import Mirror, cache_root
    from envkit.builtin.debian.index import fetch_release, packages_file
    from envkit.builtin.debian.mirror import choose_mirror

    url = choose_mirror(mirror_param if isinstance(mirror_param, str) else None)
    mirror = Mirror(url)
    release = fetch_release(mirror, suite)
    entry = packages_file(release, ARCH)
    packages = _resolved(mirror, suite, entry, variant, requested)
    key = image_key(suite, variant, url, packages)
    images = cache_root() / "images"
    images.mkdir(parents=True, exist_ok=True)
    from envkit.store.locks import lock_for  # lazy for start-up: see build_image (downward)

    with lock_for(images / f"{key}.lock").exclusive():
        found = _cached_image(images / key, store)
        if found is not None:
            return found
        epoch = _epoch(release.timestamp())
        desc = _bootstrap(mirror, suite, variant, requested, packages, store, epoch)
        (images / key).write_text(desc.digest + "\n")
    return desc


def image_key(suite: str, variant: str, mirror: str, packages: Sequence[Package]) -> str:
    """The cache key of a bootstrap: everything that decides its content."""
    body = {
        "format": FORMAT,
        "suite": suite,
        "variant": variant,
        "mirror": mirror,
        "arch": ARCH,
        "packages": [[p.name, p.version, p.sha256] for p in packages],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _resolved(
    mirror: Mirror, suite: str, entry: IndexFile, variant: str, requested: Sequence[str]
) -> list[Package]:
    """The package set for ``variant`` + ``requested`` from the index ``entry``; cached
    per index hash, so an unchanged index is neither parsed nor resolved again."""
    # lazy for start-up: this module loads with every plugin manager (downward)
    from envkit.builtin.debian.fetch import cache_root
    from envkit.builtin.debian.index import load_packages
    from envkit.builtin.debian.resolve import resolve, variant_seeds

    body = {
        "format": FORMAT,
        "index": entry.sha256,
        "variant": variant,
        "requested": list(requested),
    }
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path = cache_root() / "resolved" / f"{key}.json"
    try:
        return [package_from_json(d) for d in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    index = load_packages(mirror, suite, entry, ARCH)
    seeds = variant_seeds(index, variant)
    if "usr-is-merged" in index.by_name:
        seeds.append("usr-is-merged")  # the skeleton is merged-/usr, as mmdebstrap's is
    packages = resolve(index, seeds, requested)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([package_to_json(p) for p in packages]))
    tmp.replace(path)
    return packages


def _cached_image(path: Path, store: Store) -> Descriptor | None:
    """The image recorded under ``path``, unless it was removed or pruned since."""
    try:
        return store.resolve(path.read_text().strip())
    except (OSError, EnvkitError):
        return None


def _epoch(release_time: int | None) -> int:
    from envkit.oci.layer_writer import source_date_epoch_from_env  # lazy for start-up

    env = source_date_epoch_from_env()
    if env is not None:
        return env
    return release_time if release_time is not None else 0


def _bootstrap(
    mirror: Mirror,
    suite: str,
    variant: str,
    requested: Sequence[str],
    packages: Sequence[Package],
    store: Store,
    epoch: int,
) -> Descriptor:
    # lazy for start-up: this module loads with every plugin manager (downward)
    import secrets

    from envkit.builtin.debian.bootstrap import Plan, build_rootfs
    from envkit.runtime.state import remove_dir
    from envkit.settings import private_dir

    _log.info("fetching %d Debian packages from %s", len(packages), mirror.url)
    paths = mirror.fetch_all((p.filename, p.sha256, p.size) for p in packages)
    plan = Plan(
        packages,
        {p.name: path for p, path in zip(packages, paths, strict=True)},
        mirror.url,
        suite,
        ARCH,
    )
    workdir = Path(private_dir("build")) / f"debian-{secrets.token_hex(8)}"
    workdir.mkdir(parents=True)
    try:
        rootfs = build_rootfs(plan, workdir, lambda line: _log.debug("dpkg: %s", line))
        return _store_image(rootfs, store, epoch, suite, variant, requested)
    finally:
        remove_dir(workdir)


def _store_image(
    rootfs: Path, store: Store, epoch: int, suite: str, variant: str, requested: Sequence[str]
) -> Descriptor:
    # lazy for start-up: this module loads with every plugin manager (downward)
    from envkit.build.upper_layer import write_upper_layer
    from envkit.builtin.debian.bootstrap import DEBS_MOUNT, GZIP_LEVEL
    from envkit.oci.types import (
        MT_OCI_CONFIG,
        MT_OCI_MANIFEST,
        Descriptor,
        ImageConfig,
        Manifest,
    )
    from envkit.runtime.config import DEFAULT_PATH
    from envkit.store.atomic import TempFile

    with store.shared():
        with TempFile(store.tmp_dir, "layer") as tmp:
            info = write_upper_layer(
                rootfs,
                tmp.file,
                stubs=[DEBS_MOUNT],
                epoch=epoch,
                compression="gzip",
                level=GZIP_LEVEL,
            )
            tmp.commit(store.blob_path(info.digest), replace=False)
        created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        what = f"envkit debian {suite} variant={variant}"
        if requested:
            what += " packages=" + ",".join(requested)
        config = ImageConfig(
            {
                "architecture": ARCH,
                "os": "linux",
                "created": created,
                "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["bash"]},
                "rootfs": {"type": "layers", "diff_ids": [info.diff_id]},
                "history": [{"created": created, "created_by": what}],
            }
        )
        raw_config = config.to_bytes()
        config_desc = store.write_blob(raw_config)
        manifest = Manifest(
            config=Descriptor(MT_OCI_CONFIG, config_desc.digest, config_desc.size),
            layers=(info.descriptor(),),
        )
        desc = store.put_manifest(manifest.to_bytes(), MT_OCI_MANIFEST)
        store.keep(desc)
    return desc


def _text(params: Mapping[str, Any], key: str, default: str) -> str:
    value = params.get(key) or default
    if not isinstance(value, str):
        raise SpecError(f"Image.debian({key})", "expected a string", value=value)
    return value


@hookimpl
def envkit_image_sources() -> Sequence[ImageSource]:
    return [DebianSource()]
