"""envkit.lock against a real ``docker-registry``: a base locked by the first build stays
the base after its tag moves, on this machine and on a fresh one, until
``envkit pull --update`` moves the lock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.oci.archive_read import load_archive
from envkit.registry import push
from envkit.store.store import Store
from tests import images
from tests.integration.registry_server import RegistryServer, missing_tools

pytestmark = pytest.mark.peers

if missing_tools() or not images.have_busybox():
    pytest.skip(
        f"needs {', '.join(missing_tools()) or 'busybox-static'} "
        "(apt-get install docker-registry openssl apache2-utils busybox-static)",
        allow_module_level=True,
    )

STACK = """\
from envkit import Image, Service, Stack

app = Image.from_({ref!r}).env(LOCKED="yes")
stack = Stack("locked", services=[Service("app", init=True, image=app)])
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def publish(store: Store, tmp_path: Path, ref: str, extra: list[bytes]) -> str:
    """Load a busybox image (plus ``extra`` layers), push it as ``ref``, forget the tag."""
    archive = tmp_path / f"v{len(extra)}.tar"
    images.build_archive(archive, [images.busybox_layer(), *extra])
    load_archive(archive, store)
    digest = push("busybox:1", ref, store).digest
    store.remove("busybox:1")
    return digest


def locked_digest(here: Path, ref: str) -> str:
    data = json.loads((here / "envkit.lock").read_text())
    return str(data["images"][ref]["digest"])


def image_id(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().rsplit(" ", 1)[-1]


def test_lock_keeps_the_first_digest_until_pull_update(
    registry: RegistryServer,
    envkit_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = Store.default()
    ref = f"{registry.host}/lock/base:1"
    first = publish(store, tmp_path, ref, [])
    here = tmp_path / "project"
    here.mkdir()
    (here / "stack.py").write_text(STACK.format(ref=ref))
    monkeypatch.chdir(here)

    assert main(["build", "--progress", "quiet"]) == 0
    built_first = image_id(capsys)
    assert locked_digest(here, ref) == first

    second = publish(store, tmp_path, ref, [images.random_layer(3, 10_000)])
    assert second != first
    assert main(["build", "--progress", "quiet"]) == 0
    assert image_id(capsys) == built_first
    assert locked_digest(here, ref) == first

    # Another machine: an empty store pulls the locked digest, not the moved tag.
    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path / "other-home"))
    (tmp_path / "other-home").mkdir()
    assert main(["build", "--progress", "quiet"]) == 0
    assert image_id(capsys) == built_first
    assert Store.default().resolve(first).digest == first

    assert main(["pull", "--update"]) == 0
    out = capsys.readouterr().out
    assert f"updated from {first}" in out
    assert locked_digest(here, ref) == second
    assert main(["build", "--progress", "quiet"]) == 0
    assert image_id(capsys) != built_first
    assert not list(here.glob(".envkit.lock.*"))  # the atomic rewrite left no temp file
