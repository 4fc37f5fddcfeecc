"""``envkit system df``: what uses disk space, as ``docker system df`` shows it."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from envkit.cli import shown
from envkit.errors import EnvkitError
from envkit.records import Record

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import Command
    from envkit.runtime.state import ContainerState
    from envkit.store.store import Store


class Usage(Record):
    """One row of ``system df``: bytes on disk and what ``prune`` (or ``rm``) frees."""

    type: str
    total: int
    active: int
    size: int
    reclaimable: int

    def row(self) -> dict[str, object]:
        from envkit.store.timestamps import human_size

        share = f" ({self.reclaimable * 100 // self.size}%)" if self.size else ""
        return {
            "Type": self.type,
            "TotalCount": self.total,
            "Active": self.active,
            "Size": human_size(self.size),
            "Reclaimable": human_size(self.reclaimable) + share,
            "SizeBytes": self.size,
            "ReclaimableBytes": self.reclaimable,
        }


def disk_usage() -> list[Usage]:
    """Images, containers, local volumes and the build cache of ``$ENVKIT_HOME``."""
    from envkit.runtime import state
    from envkit.store.store import Store

    store = Store.default()
    records = state.all_states()
    with store.shared():
        return [
            _images(store, {r.image_id for r in records}),
            _containers(records),
            _volumes(),
            _build_cache(),
        ]


def _images(store: Store, used_ids: set[str]) -> Usage:
    """Blobs and extracted snapshots; what images no container uses hold alone."""
    from envkit.build import sweep
    from envkit.store import graph
    from envkit.store.snapshots import snapshots_dir

    ids: set[str] = set()
    active_blobs: set[str] = set()
    active_snaps: set[str] = set()
    for _, desc in store.entries():
        try:
            _, manifest = store.image_manifest(desc)
            diff_ids = store.config(manifest).diff_ids
        except EnvkitError:
            continue
        image_id = manifest.config.digest
        ids.add(image_id)
        if image_id in used_ids:
            active_blobs.update(graph.closure(store, desc).present)
            active_snaps |= sweep.snapshot_names(diff_ids)
    blobs = {d: _size(store.blob_path(d)) for d in store.blobs()}
    snaps_root = snapshots_dir()
    snaps = {
        name: sweep.disk_usage(snaps_root / name)
        for name in sorted(os.listdir(snaps_root))
        if os.path.isdir(snaps_root / name)
    }
    size = sum(blobs.values()) + sum(snaps.values())
    kept = sum(s for d, s in blobs.items() if d in active_blobs)
    kept += sum(s for n, s in snaps.items() if n in active_snaps)
    return Usage("Images", len(ids), len(ids & used_ids), size, size - kept)


def _containers(records: list[ContainerState]) -> Usage:
    from envkit.build import sweep

    size = reclaimable = active = 0
    for record in records:
        used = sweep.disk_usage(record.dir)
        size += used
        if record.running:
            active += 1
        else:
            reclaimable += used
    return Usage("Containers", len(records), active, size, reclaimable)


def _volumes() -> Usage:
    """The local backend's volumes; active: mounted by a stack that is up."""
    from envkit.build import sweep
    from envkit.cli.volume_cmd import _in_use

    top = sweep.home() / "volumes"
    names = sorted(os.listdir(top)) if top.is_dir() else []
    in_use = _in_use()
    size = reclaimable = active = 0
    for name in names:
        used = sweep.disk_usage(top / name)
        size += used
        if name in in_use:
            active += 1
        else:
            reclaimable += used
    return Usage("Local Volumes", len(names), active, size, reclaimable)


def _build_cache() -> Usage:
    """Step entries, cache mounts and run steps' dirs (active: a build runs in them)."""
    from envkit.build import sweep
    from envkit.build.cache import StepCache, mounts_dir

    entries = list(StepCache().entries())
    mounts = sorted(mounts_dir().iterdir()) if mounts_dir().is_dir() else []
    build = sweep.home() / "build"
    dirs = sorted(build.iterdir()) if build.is_dir() else []
    dead = set(sweep.dead_build_dirs(sweep.home(), exclusive=False))
    live = [d for d in dirs if d not in dead]
    size = sum(sweep.disk_usage(p) for p in [*entries, *mounts, *dirs])
    in_use = sum(sweep.disk_usage(p) for p in live)
    return Usage("Build Cache", len(entries) + len(mounts), len(live), size, size - in_use)


def _size(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


class SystemCommand:
    """``envkit system df``."""

    name = "system"
    help = "system-wide information: `system df` shows what uses disk space"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        df = sub.add_parser(
            "df", help="disk space used by images, containers, local volumes and build cache"
        )
        df.add_argument("--format", choices=["table", "json"], default="table")

    def run(self, args: argparse.Namespace) -> int:
        rows = [usage.row() for usage in disk_usage()]
        if args.format == "json":
            for row in rows:  # one object per line, as `docker system df --format json`
                print(json.dumps(row, sort_keys=True))
            return 0
        header = ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        keys = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
        shown.table([header, *([str(row[k]) for k in keys] for row in rows)])
        return 0


COMMANDS: list[Command] = [SystemCommand()]
