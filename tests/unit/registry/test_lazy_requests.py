"""requests (and the registry client) load only where a command talks to a registry.

``envkit run`` of a stored image and ``up`` with every image present resolve their
images in the store and never import requests, urllib3 or the registry transport (each
costs tens of milliseconds of start-up). Checked in a fresh interpreter that imports the
CLI and the run and up code and resolves a stored image through both paths' pull policy
code (``containers._resolve_pulling``, ``stack.api.pull_images``).
"""

from __future__ import annotations

from pathlib import Path

from envkit.store.store import Store
from tests import images
from tests.unit.fresh_imports import loaded_after
from tests.unit.registry.test_fakes import store_image

NETWORK_MODULES = (
    "requests",
    "urllib3",
    "http.client",
    "envkit.registry.transport",
    "envkit.registry.client",
)

CODE = (
    "import envkit, envkit.cli, envkit.container.start, envkit.stack.api\n"
    "from envkit.cli import fast_parser\n"
    "fast_parser('run').parse_args(['--rm', 'example.test/app:1', 'true'])\n"
    "from envkit.store.store import Store\n"
    "with Store.default().shared():\n"
    "    envkit.container.prepare._resolve_pulling('example.test/app:1', 'missing', None)\n"
    "envkit.stack.api.pull_images({'web': 'example.test/app:1'}, 'missing')\n"
)


def test_run_and_up_of_stored_images_never_import_requests(tmp_path: Path) -> None:
    store_image(
        Store(tmp_path / "store"),
        "example.test/app:1",
        [images.layer_tar({"etc/hello": b"hi\n"})],
    )
    assert loaded_after(CODE, tmp_path, NETWORK_MODULES) == []


def test_the_check_itself_sees_a_pull_import_requests(tmp_path: Path) -> None:
    """The same check notices requests when a registry is really asked (so the test
    above cannot pass for a wrong reason)."""
    code = (
        "from envkit.registry.client import RegistryClient\n"
        "from envkit.errors import RegistryError\n"
        "try:\n"
        "    RegistryClient('127.0.0.1:9', credentials=None, retries=1).base_url\n"
        "except RegistryError:\n"
        "    pass\n"
    )
    assert loaded_after(code, tmp_path, ("requests",)) == ["requests"]
