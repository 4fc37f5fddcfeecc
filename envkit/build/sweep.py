"""What killed builds, runs and pulls leave, and snapshots nothing uses any more.

``prune`` and ``fsck --repair`` remove, under the store lock held exclusive:

* **build dirs** ``$ENVKIT_HOME/build/<pid>-<start>-<random>/`` (a run step's upper and
  work dirs) whose owner process is gone: the name holds the pid and start time of the
  build that made it (:func:`build_dir_name`), so a recycled pid is never taken for it;
* **runtime dirs** ``$TMPDIR/envkit-ctr-*`` (the runtime's default state dir) that are
  empty, belong to the caller and are no process's mount point;
* **port logs** ``$ENVKIT_HOME/network/logs/ports-<name>.log`` of containers that no
  longer exist;
* **cache temp files** ``tmp-*`` beside the build cache's step entries and context
  indexes (``$ENVKIT_HOME/cache/steps``, ``cache/context``), the run-cache's entries
  (``run-cache/``) and the credentials file (``auth.json``): they are written there
  and renamed into place; those whose writer is gone;
* **snapshots** (``$ENVKIT_HOME/snapshots``) that no image in the store, no build cache
  entry and no container uses, and partial extractions;
* **build context snapshots** (``$ENVKIT_HOME/cache/context/<ctx>.files/``): blobs their
  context's index no longer refers to, and the whole snapshot (with its index) of a
  context whose index is unusable or whose directory is gone
  (:func:`envkit.build.context.unused_snapshot_files`; builds hold the store lock shared
  while they read them).

Snapshots and concurrent runs: every extraction holds the store lock shared
(:func:`envkit.store.snapshots.prepare`), and ``envkit run`` holds it shared from the
moment it picks its snapshots (possibly from the run-cache, without opening the store)
until its container record exists (:func:`envkit.store.resolved.holding`). A container
record keeps its image's snapshots (found by image id in the store, else in the
run-cache, which remembers the snapshot dirs of every image run). So a collection, which
holds the lock exclusive, sees every snapshot that is being made or about to be used.
When a running container's image can no longer be found at all, no snapshot is removed.

A rerun of a build removes what a killed build left (:func:`after_crash`), under the
shared lock: only build dirs and temp files whose owner pid is gone.

It lives in :mod:`envkit.build`, the lowest layer that sees everything it sweeps: the
build's dirs and caches, the runtime's records and dirs, the store's snapshots.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from envkit.errors import EnvkitError
from envkit.records import Record, field
from envkit.runtime import state
from envkit.settings import home_dir
from envkit.store.atomic import TMP_PREFIX, is_live

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from envkit.store.store import Store

#: Prefix of the runtime's default state dirs under $TMPDIR (envkit/runtime/spawn.py).
RUNTIME_DIR_PREFIX = "envkit-ctr-"
PORT_LOG_PREFIX = "ports-"


class SweepReport(Record):
    """What :func:`collect` found (``check``) or removed; paths are absolute."""

    build_dirs: list[str] = field(default_factory=list)
    runtime_dirs: list[str] = field(default_factory=list)
    port_logs: list[str] = field(default_factory=list)
    cache_tmp_files: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)  # unused, whole
    partial_snapshots: list[str] = field(default_factory=list)  # interrupted extractions
    run_cache: list[str] = field(default_factory=list)  # entries naming removed snapshots
    #: Build context snapshot files (and whole snapshots) no context index refers to.
    context_snapshots: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    #: Why snapshots were kept although unused ("" when collected).
    snapshots_kept: str = ""

    @property
    def leftovers(self) -> list[str]:
        """What killed processes left (not unused snapshots): damage for ``fsck``."""
        return [*self.build_dirs, *self.cache_tmp_files, *self.port_logs, *self.partial_snapshots]


def home() -> Path:
    return Path(home_dir())


# -- ownership ------------------------------------------------------------------------


def build_dir_name() -> str:
    """A new build dir's name: this process's pid and start time, and a random part."""
    pid = os.getpid()
    return f"{pid}-{state.process_start(pid) or 0}-{os.urandom(8).hex()}"


def _owner_alive(name: str) -> bool | None:
    """Whether the process a build dir (or temp file) is named after runs; ``None``
    when the name carries no owner (made by an older envkit)."""
    parts = name.split("-")
    if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return state.alive(int(parts[0]), int(parts[1]))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- finding --------------------------------------------------------------------------


def dead_build_dirs(root: Path, *, exclusive: bool) -> list[Path]:
    """Build dirs whose owner is gone (``exclusive``: also those of older envkits, which
    cannot be running while the store lock is held exclusive: builds hold it shared)."""
    top = root / "build"
    found = []
    for name in _listdir(top):
        alive = _owner_alive(name)
        if alive is False or (alive is None and exclusive):
            found.append(top / name)
    return found


def dead_runtime_dirs() -> list[Path]:
    """``$TMPDIR/envkit-ctr-*`` dirs of the caller that are empty and mounted nowhere."""
    import tempfile  # lazy for start-up: a build's crash sweep does not need it

    top = Path(tempfile.gettempdir())
    candidates = []
    for name in _listdir(top):
        if not name.startswith(RUNTIME_DIR_PREFIX):
            continue
        path = top / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not _listdir(path):
            candidates.append(path)
    if not candidates:
        return []
    mounted = _mount_points()
    return [p for p in candidates if str(p) not in mounted]


def _mount_points() -> set[str]:
    """Every mount point any readable /proc/PID/mountinfo shows (other mount namespaces
    included: a container's monitor mounts its tmpfs over its runtime dir there)."""
    points: set[str] = set()
    for pid in _listdir(Path("/proc")):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/mountinfo", "rb") as f:
                for line in f:
                    fields = line.split(b" ", 5)
                    if len(fields) > 4:
                        points.add(_unescape(fields[4].decode(errors="replace")))
        except OSError:
            continue
    return points


def _unescape(text: str) -> str:
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def orphan_port_logs(root: Path) -> list[Path]:
    """Port forwarder logs of containers that no longer exist."""
    top = root / "network" / "logs"
    names = _listdir(top)
    if not names:
        return []
    existing = {s.name for s in state.all_states()}
    found = []
    for name in names:
        container = name[len(PORT_LOG_PREFIX) : -len(".log")]
        ours = name.startswith(PORT_LOG_PREFIX) and name.endswith(".log")
        if ours and container not in existing:
            found.append(top / name)
    return found


def dead_tmp_files(store: Store) -> list[Path]:
    """Temp files in the store's ``tmp/`` whose writer (named in the file) is gone."""
    return _dead_tmp_in(store.tmp_dir)


def dead_cache_tmp_files(root: Path) -> list[Path]:
    """Temp files written beside their final name whose writer is gone: of the build
    cache (step entries, context indexes), the run-cache and the credentials file."""
    cache = root / "cache"
    return [
        *_dead_tmp_in(cache / "steps"),
        *_dead_tmp_in(cache / "context"),
        *_dead_tmp_in(root / "run-cache"),
        *_dead_tmp_in(root),
    ]


def _dead_tmp_in(top: Path) -> list[Path]:
    found = []
    for name in _listdir(top):
        if not name.startswith(TMP_PREFIX):
            continue
        pid = name.rsplit("-", 2)[-2] if name.count("-") >= 3 else ""
        path = top / name
        if pid.isdigit() and not _pid_alive(int(pid)) and not is_live(path):
            found.append(path)
    return found


def snapshots_in_use(store: Store) -> tuple[set[str], str]:
    """Names of the snapshots (``<hex>``, ``chain-<hex>``) that images in the store,
    build cache entries and containers use; and why nothing may be collected ("" when
    the answer is complete)."""
    used: set[str] = set()
    configs: dict[str, list[str]] = {}  # image id -> diff_ids
    for _, desc in store.entries():
        try:
            _, manifest = store.image_manifest(desc)
            diff_ids = store.config(manifest).diff_ids
        except EnvkitError:
            continue  # an incomplete image cannot run: fsck reports it
        configs[manifest.config.digest] = list(diff_ids)
        used |= snapshot_names(diff_ids)
    for diff_ids in _cache_states():
        used |= snapshot_names(diff_ids)
    remembered = _run_cache()
    for record in state.all_states():
        if record.image_id in configs:
            used |= snapshot_names(configs[record.image_id])
        elif record.image_id in remembered:
            used |= remembered[record.image_id]
        elif record.running:
            return used, (
                f"container {record.name} runs image {record.image_id[:19]}, which is "
                "no longer in the store"
            )
    return used, ""


def snapshot_names(diff_ids: Iterable[str]) -> set[str]:
    from envkit.store.snapshots import chain_id  # lazy: only prune and fsck (downward)

    ids = [str(d) for d in diff_ids]
    names = set()
    for digest in ids:
        algo, _, hexd = digest.partition(":")
        if algo == "sha256":
            names.add(hexd)
    if ids:
        names.add("chain-" + chain_id(ids).partition(":")[2])
    return names


def _cache_states() -> Iterator[list[str]]:
    # lazy: only prune and fsck read the build cache (a build's crash sweep does not)
    from envkit.build.cache import StepCache
    from envkit.build.image_state import ImageState

    for path in StepCache().entries():
        try:
            data = json.loads(path.read_bytes())
            yield ImageState.from_json(data["state"]).diff_ids
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue


def _run_cache_files() -> list[Path]:
    top = home() / "run-cache"
    return [top / n for n in _listdir(top) if n.endswith(".json")]


def _run_cache() -> dict[str, set[str]]:
    """Image id -> the snapshot names the run-cache remembers for it."""
    found: dict[str, set[str]] = {}
    for path in _run_cache_files():
        try:
            data = json.loads(path.read_bytes())
            layers = [os.path.basename(str(p)) for p in data["layers"]]
            found.setdefault(str(data["image_id"]), set()).update(layers)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def _base(name: str) -> str:
    """The snapshot a file of ``snapshots/`` belongs to."""
    from envkit.oci.layer_reader import PARTIAL_INFIX  # lazy: only prune and fsck (downward)

    base = name.lstrip(".").split(PARTIAL_INFIX, 1)[0]
    for suffix in (".json", ".lock"):
        base = base.removesuffix(suffix)
    return base


def snapshot_files(store: Store) -> tuple[list[Path], list[Path], str]:
    """(files of unused snapshots, partial extractions, why snapshots were kept).

    Call with the store lock held exclusive, or shared for a report that may include
    extractions in progress."""
    from envkit.store.snapshots import snapshots_dir  # lazy: only prune and fsck (downward)

    top = snapshots_dir()
    names = _listdir(top)
    if not names:
        return [], [], ""
    used, kept = snapshots_in_use(store)
    unused, partial = [], []
    for name in names:
        path = top / name
        base = _base(name)
        if name.startswith("."):
            partial.append(path)
        elif base in used:
            if (
                not name.startswith("chain-")
                and name == base
                and not (top / f"{base}.json").exists()
            ):
                partial.append(path)  # extracted, the count never written
        elif not kept:
            unused.append(path)
    return unused, partial, kept


# -- removing -------------------------------------------------------------------------


def collect(store: Store, *, snapshots: bool = True) -> SweepReport:
    """Remove every leftover, build context snapshot files no index refers to and
    (``snapshots``) every unused snapshot; hold the store lock exclusive."""
    root = home()
    report = SweepReport()
    for path in dead_build_dirs(root, exclusive=True):
        report.freed_bytes += _remove(path)
        report.build_dirs.append(str(path))
    for path in dead_runtime_dirs():
        try:
            os.rmdir(path)
        except OSError:
            continue
        report.runtime_dirs.append(str(path))
    for path in orphan_port_logs(root):
        report.freed_bytes += _remove(path)
        report.port_logs.append(str(path))
    for path in dead_cache_tmp_files(root):
        report.freed_bytes += _remove(path)
        report.cache_tmp_files.append(str(path))
    from envkit.build.context import unused_snapshot_files  # lazy: only prune and fsck

    for path in unused_snapshot_files(root / "cache" / "context"):
        report.freed_bytes += _remove(path)
        report.context_snapshots.append(str(path))
    unused, partial, report.snapshots_kept = snapshot_files(store)
    for path in partial:
        report.freed_bytes += _remove(path)
        report.partial_snapshots.append(str(path))
    if snapshots:
        # The completion marks first: a run-cache entry naming the snapshot is then
        # stale at once, never pointing at a half-removed dir.
        unused.sort(key=lambda p: (not p.name.endswith(".json"), p.name))
        for path in unused:
            report.freed_bytes += _remove(path)
            if path.is_dir() or not path.name.endswith((".json", ".lock")):
                report.snapshots.append(str(path))
        gone = {p.name for p in unused}
        for entry in _run_cache_files():
            try:
                layers = json.loads(entry.read_bytes())["layers"]
            except (OSError, ValueError, KeyError, TypeError):
                layers = None
            if layers is None or any(os.path.basename(str(p)) in gone for p in layers):
                report.freed_bytes += _remove(entry)
                report.run_cache.append(str(entry))
    return report


def check(store: Store) -> SweepReport:
    """What :func:`collect` would remove as leftovers (snapshots in use by an extraction
    in progress are skipped: their lock is held)."""
    root = home()
    report = SweepReport()
    report.build_dirs = [str(p) for p in dead_build_dirs(root, exclusive=False)]
    report.runtime_dirs = [str(p) for p in dead_runtime_dirs()]
    report.port_logs = [str(p) for p in orphan_port_logs(root)]
    report.cache_tmp_files = [str(p) for p in dead_cache_tmp_files(root)]
    _, partial, _ = snapshot_files(store)
    report.partial_snapshots = [str(p) for p in partial if not _extracting(p)]
    return report


def _extracting(path: Path) -> bool:
    return is_live(path.parent / f"{_base(path.name)}.lock")


def after_crash(store: Store) -> list[str]:
    """Remove what killed builds left: build dirs, store and build cache temp files
    whose owner process is gone. Safe beside running builds (hold the store lock shared)."""
    removed = []
    root = home()
    dead = [*dead_build_dirs(root, exclusive=False), *dead_tmp_files(store)]
    for path in [*dead, *dead_cache_tmp_files(root)]:
        _remove(path)
        removed.append(str(path))
    return removed


def _remove(path: Path) -> int:
    """Remove a file or tree (files of subordinate ids too); the bytes it held."""
    size = disk_usage(path)
    try:
        if path.is_dir() and not path.is_symlink():
            state.remove_dir(path)
            if path.exists():
                return 0
        else:
            path.unlink()
    except FileNotFoundError:
        return 0
    return size


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path`` (hard links counted once; unreadable parts skipped)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def add(p: str) -> bool:
        nonlocal total
        try:
            st = os.lstat(p)
        except OSError:
            return False
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                return False
            seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
        return stat.S_ISDIR(st.st_mode)

    if add(str(path)):
        for dirpath, dirnames, filenames in os.walk(path):
            for name in dirnames:
                add(os.path.join(dirpath, name))
            for name in filenames:
                add(os.path.join(dirpath, name))
    return total


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
