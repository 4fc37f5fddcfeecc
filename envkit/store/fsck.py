"""``fsck``: find corrupt, missing and half-written content; ``--repair`` removes it.

What is checked: ``oci-layout`` and ``index.json`` parse; every file under ``blobs/``
is named by a sha256 digest and hashes to it; every index.json entry reaches a complete
image (manifest or index, config, layers); ``tmp/`` holds no leftovers of a crashed
write (files still being written by a live process are skipped: their writer holds a
lock on them).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from envkit.oci.digest import CHUNK, is_digest, new_sha256
from envkit.oci.types import Index, canonical_json
from envkit.store import graph
from envkit.store.atomic import atomic_write, fsync_dir, is_live
from envkit.store.store import LAYOUT_VERSION, FsckReport

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import FsckReport, Store


#: Names of interrupted downloads the registry client resumes (envkit/registry/blobs.py).
RESUMABLE_PREFIX = "pull-"
RESUMABLE_SUFFIX = ".partial"


def check(store: Store) -> FsckReport:
    """Find every problem; change nothing."""
    report = FsckReport()
    _check_layout(store, report)
    for path, digest in _blob_files(store):
        if digest is None:
            report.partial_files.append(_rel(store, path))
        elif _hash_file(path) != digest:
            report.corrupt_blobs.append(digest)
    corrupt = set(report.corrupt_blobs)
    if not any("index.json" in e for e in report.layout_errors):
        missing: set[str] = set()
        for ref, desc in store.entries():
            walk = graph.closure(store, desc)
            bad = [d for d in walk.present if d in corrupt]
            if walk.complete and not bad:
                continue
            report.broken_refs.append(ref or desc.digest)
            missing.update(walk.missing)
        report.missing_blobs = sorted(missing)
    for name in sorted(os.listdir(store.tmp_dir)):
        path = store.tmp_dir / name
        if is_live(path):
            continue
        if name.startswith(RESUMABLE_PREFIX) and name.endswith(RESUMABLE_SUFFIX):
            report.resumable.append(_rel(store, path))
        else:
            report.partial_files.append(_rel(store, path))
    return report


def repair_store(store: Store) -> FsckReport:
    """Check, then remove what is broken; the store lock must be held exclusive.

    Removes corrupt blobs, stray files and tmp leftovers, and the refs whose image is
    incomplete; a damaged ``index.json`` is set aside (its refs are lost) and
    ``oci-layout`` rewritten. Blobs only the removed refs reached stay until ``prune``.
    """
    report = check(store)
    report.repair_attempted = True
    for problem in report.layout_errors:
        report.repaired.append(_repair_layout(store, problem))
    if report.corrupt_blobs:
        for digest in report.corrupt_blobs:
            store.blob_path(digest).unlink(missing_ok=True)
            report.repaired.append(f"removed corrupt blob {digest}")
        fsync_dir(store.blob_dir)
    for rel in report.partial_files:
        (store.root / rel).unlink(missing_ok=True)
        report.repaired.append(f"removed leftover {rel}")
    if report.broken_refs:
        broken = set(report.broken_refs)
        # Every entry pointing at a broken manifest is broken alike: drop them by digest.
        for digest in sorted(
            {d.digest for ref, d in store.entries() if (ref or d.digest) in broken}
        ):
            store.untag_image(digest)
        for name in report.broken_refs:
            report.repaired.append(f"removed ref {name}: image incomplete")
    after = check(store)
    report.remaining = [
        *(f"corrupt blob {d}" for d in after.corrupt_blobs),
        *(f"missing blob {d}" for d in after.missing_blobs),
        *(f"leftover {p}" for p in after.partial_files),
        *(f"broken ref {r}" for r in after.broken_refs),
        *after.layout_errors,
    ]
    return report


def _check_layout(store: Store, report: FsckReport) -> None:
    try:
        layout = json.loads(store.layout_path.read_bytes())
        if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
            raise ValueError("no imageLayoutVersion")
    except (OSError, ValueError) as exc:
        report.layout_errors.append(f"oci-layout: {_why(exc)}")
    try:
        data = json.loads(store.index_path.read_bytes())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        Index.from_json(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.layout_errors.append(f"index.json: {_why(exc)}")


def _repair_layout(store: Store, problem: str) -> str:
    if problem.startswith("oci-layout"):
        layout = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
        atomic_write(store.layout_path, layout, store.tmp_dir)
        return "rewrote oci-layout"
    aside = store.root / f"index.json.damaged-{int(time.time())}"
    if store.index_path.exists():
        os.replace(store.index_path, aside)
    atomic_write(store.index_path, Index().to_bytes(), store.tmp_dir)
    return f"set the damaged index.json aside as {aside.name} and started an empty one"


def _blob_files(store: Store) -> list[tuple[Path, str | None]]:
    """Every file under ``blobs/``, with its digest (``None`` for a misnamed file)."""
    found: list[tuple[Path, str | None]] = []
    for dirpath, dirnames, filenames in os.walk(store.root / "blobs"):
        dirnames.sort()
        algorithm = os.path.basename(dirpath)
        for name in sorted(filenames):
            digest = f"{algorithm}:{name}"
            found.append((Path(dirpath) / name, digest if is_digest(digest) else None))
    return found


def _hash_file(path: Path) -> str:
    h = new_sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _rel(store: Store, path: Path) -> str:
    return str(path.relative_to(store.root))


def _why(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"not valid ({exc})"
