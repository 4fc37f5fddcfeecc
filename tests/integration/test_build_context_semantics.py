"""Docker's build-context semantics: a build uses the context as it was read when the
build started, so files written while it runs (a redirected log) never fail it, and the
envkit home is never part of a context, even inside the project. Issue 17."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit import Image
from envkit.build.executor import BuildResult, build
from envkit.store.store import Store
from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"


@pytest.fixture(scope="module")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    homes.require_containers()
    archive = tmp_path_factory.mktemp("busybox") / "bb.tar"
    images.build_archive(archive, ref=BUSYBOX)
    return archive


@pytest.fixture
def home(envkit_home: Path, busybox_archive: Path) -> Iterator[Path]:
    from envkit.oci.archive_read import load_archive

    load_archive(busybox_archive, Store.default())
    yield envkit_home


def _files(digest: str) -> dict[str, bytes]:
    """Every regular file of an image's layers, by path (the last layer wins)."""
    store = Store.default()
    found: dict[str, bytes] = {}
    for layer in store.manifest(digest).layers:
        with store.open_blob(layer.digest) as blob, tarfile.open(fileobj=blob, mode="r|gz") as tar:
            for member in tar:
                if member.isfile():
                    stream = tar.extractfile(member)
                    found[member.name] = stream.read() if stream is not None else b""
    return found


class _Appender(threading.Thread):
    """Appends a line to ``path`` every few milliseconds until stopped, as ``tee`` does."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.lines = 0

    def run(self) -> None:
        with self.path.open("a") as out:
            while not self.stop.is_set():
                self.lines += 1
                out.write(f"progress line {self.lines}\n")
                out.flush()
                time.sleep(0.02)


def test_redirected_log_in_the_project_never_fails_the_build(home: Path, tmp_path: Path) -> None:
    """`envkit build > build.log 2>&1` in the project folder, and a `tee`-like writer."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.txt").write_text("app\n")
    (project / "img.py").write_text(
        "from envkit import Image\n"
        f"img = Image.from_({BUSYBOX!r}).run('sleep 1').copy('.', '/ctx/')\n"
    )
    tee = _Appender(project / "tee.log")
    tee.start()
    try:
        time.sleep(0.1)
        with (project / "build.log").open("wb") as log:
            done = subprocess.run(
                [sys.executable, "-m", "envkit", "build", "img.py:img", "-t", "logged:1",
                 "--progress", "plain"],
                cwd=project,
                env=_env(home),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )  # fmt: skip
    finally:
        tee.stop.set()
        tee.join()
    log_text = (project / "build.log").read_text()
    assert done.returncode == 0, log_text
    assert "changed while the image was built" not in log_text
    store = Store.default()
    files = _files(store.resolve("logged:1").digest)
    assert files["ctx/app.txt"] == b"app\n"
    # What was built is each file as it was read at the start: a prefix of it now.
    assert (project / "tee.log").read_bytes().startswith(files["ctx/tee.log"])
    assert (project / "build.log").read_bytes().startswith(files["ctx/build.log"])
    assert len(files["ctx/tee.log"]) < (project / "tee.log").stat().st_size


def _env(home: Path) -> dict[str, str]:
    full = {**os.environ, "ENVKIT_HOME": str(home)}
    full.pop("ENVKIT_DEBUG", None)
    return full


def test_envkit_home_inside_the_context_is_not_part_of_it(home: Path, tmp_path: Path) -> None:
    assert home.parent == tmp_path  # the store lives inside the context below
    (tmp_path / "app.txt").write_text("app\n")
    image = Image.from_(BUSYBOX).run("sleep 0.2").copy(".", "/ctx/")
    first: BuildResult = build(image, tmp_path, tag="inside:1")
    files = _files(first.digest)
    assert "ctx/app.txt" in files
    assert not any(name.startswith(f"ctx/{home.name}") for name in files)
    # The store changed during that build and since: the context did not.
    again = build(image, tmp_path, tag="inside:1")
    assert again.digest == first.digest
    assert again.executed == 0
