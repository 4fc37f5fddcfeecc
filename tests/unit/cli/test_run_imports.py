"""``envkit run``'s start-up imports only what starting a container needs.

The CLI's ``run`` is timed against podman (issue 3: at most 0.3x), and most of its time
used to be imports. These heavy modules cost milliseconds each and are needed by nothing
on the path; a new top-level import of one of them would quietly undo that work.
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.fresh_imports import loaded_after

HEAVY = ("typing", "dataclasses", "pathlib", "shutil", "socket", "subprocess", "threading")

PATH_MODULES = (
    "from envkit.cli import fast_parser\n"
    "fast_parser('run').parse_args(['--rm', 'img', 'true'])\n"
    "import envkit.container.start, envkit.runtime.spawn, envkit.store.resolved\n"
    "from envkit.runtime import state\n"
    "state.reap()\n"
)


def test_the_run_path_imports_no_heavy_module(tmp_path: Path) -> None:
    assert loaded_after(PATH_MODULES, tmp_path, HEAVY) == []


def test_the_run_path_imports_no_registry_client(tmp_path: Path) -> None:
    """The registry client (and requests) load only when an image must be pulled
    (``envkit.pulling``); ``test_run_pull.py`` checks a real run of a stored image."""
    modules = ("requests", "urllib3", "envkit.pulling", "envkit.registry", "envkit.registry.pull")
    assert loaded_after(PATH_MODULES, tmp_path, modules) == []
