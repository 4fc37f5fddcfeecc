"""``envkit pull`` and ``envkit push`` start up without the heavy modules.

Issue #5 times both against ``skopeo copy`` in a fresh process, where imports are most
of a warm pull's time (docs/dev/registry.md). These modules cost milliseconds each and
loading the registry path needs none of them: HTTP is requests, imported on the first
request (:mod:`envkit.registry.transport`), records are :class:`envkit.records.Value` (no
dataclasses, inspect), hashing of small documents needs no hashlib, typing or secrets. A
new top-level import of one of them would quietly undo that. (``pathlib`` still arrives
through ``envkit.store.locks``: the store's contract hands out ``Path`` objects.)
``test_registry.py`` runs a real warm pull and push with :data:`NOT_BY_REQUESTS`, the
part of the list requests itself does not bring.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.fresh_imports import loaded_after

HEAVY = (
    "dataclasses",
    "inspect",
    "http.client",
    "email",
    "socket",
    "ssl",
    "requests",
    "urllib3",
    "concurrent.futures",
    "logging",
    "datetime",
    "subprocess",
    "shutil",
    "pluggy",
    "typing",
    "hashlib",
    "secrets",
)

#: What a real request may not load either: requests brings the rest of :data:`HEAVY`.
NOT_BY_REQUESTS = (
    "dataclasses",
    "inspect",
    "concurrent.futures",
    "subprocess",
    "pluggy",
    "secrets",
)

PATH_MODULES = (
    "from envkit.cli import fast_parser\n"
    "fast_parser('pull').parse_args(['-q', 'registry.test/a:1'])\n"
    "fast_parser('push').parse_args(['-q', 'a:1', 'registry.test/a:1'])\n"
    "import envkit.registry.pull, envkit.registry.push, envkit.registry.progress\n"
    "from envkit.store.store import Store\n"
    "Store.default()\n"
)


def test_the_pull_and_push_path_imports_no_heavy_module(tmp_path: Path) -> None:
    assert loaded_after(PATH_MODULES, tmp_path, HEAVY) == []
