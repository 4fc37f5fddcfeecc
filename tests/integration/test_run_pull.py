"""``run`` and ``up`` pull an image that is not in the store (docker's ``--pull``), from a
real ``docker-registry`` on 127.0.0.1, into homes that start empty; root and rootless."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import envkit
from envkit.errors import ImageNotFoundError, SpecError
from tests import images
from tests.integration import homes
from tests.integration.registry_server import RegistryServer, free_port, missing_tools

pytestmark = pytest.mark.rootless

if missing_tools() or not images.have_busybox():
    pytest.skip(
        f"needs {', '.join(missing_tools()) or 'busybox-static'} "
        "(apt-get install docker-registry openssl apache2-utils busybox-static)",
        allow_module_level=True,
    )


def _version_layer(version: str) -> bytes:
    return images.layer_tar({"etc/version": f"{version}\n".encode()})


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding v1:1 and v2:1: busybox with /etc/version saying 1 or 2."""
    work = tmp_path_factory.mktemp("pull-source")
    homes.loaded_home(work, [images.busybox_layer(), _version_layer("1")], "v1:1")
    return homes.loaded_home(work, [images.busybox_layer(), _version_layer("2")], "v2:1")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def _push(source: Path, image: str, ref: str) -> None:
    done = homes.cli(source, ["push", "-q", image, ref])
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def remote(source: Path, registry: RegistryServer) -> str:
    """``HOST:PORT/pull/busybox:1`` in the registry, holding v1."""
    ref = f"{registry.host}/pull/busybox:1"
    _push(source, "v1:1", ref)
    return ref


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """An empty ENVKIT_HOME; no container may be left in it."""
    path = tmp_path / "home"
    yield path
    left = list((path / "containers").glob("[!.]*")) if (path / "containers").exists() else []
    assert left == [], "a container was left behind"


def test_run_pulls_a_missing_image_with_dockers_lines_on_stderr(home: Path, remote: str) -> None:
    done = homes.cli(home, ["run", "--rm", remote, "cat", "/etc/version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1\n"  # the pull's lines never reach stdout
    lines = done.stderr.splitlines()
    assert lines[0] == f"Unable to find image '{remote}' locally"
    assert lines[1] == "1: Pulling from pull/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert any(line.startswith("Digest: sha256:") for line in lines)
    assert lines[-1] == f"Status: Downloaded newer image for {remote}"
    again = homes.cli(home, ["run", "--rm", remote, "true"])
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")  # no registry asked


def test_pull_never_fails_with_exit_2_and_a_hint(home: Path, remote: str) -> None:
    done = homes.cli(home, ["run", "--rm", "--pull=never", remote, "true"])
    assert done.returncode == 2
    assert f"no image '{remote}'" in done.stderr and "--pull=never" in done.stderr
    assert f"envkit pull {remote}" in done.stderr
    assert "Traceback" not in done.stderr and "Unable to find" not in done.stderr
    bad = homes.cli(home, ["run", "--pull=sometimes", remote, "true"])
    assert bad.returncode == 2 and "--pull" in bad.stderr


def test_pull_always_follows_a_moved_tag(
    home: Path, source: Path, registry: RegistryServer
) -> None:
    ref = f"{registry.host}/pull/moving:1"
    _push(source, "v1:1", ref)
    first = homes.cli(home, ["run", "--rm", "--pull", "always", ref, "cat", "/etc/version"])
    assert (first.returncode, first.stdout) == (0, "1\n"), first.stderr
    assert "Unable to find" not in first.stderr and "Pulling from pull/moving" in first.stderr
    _push(source, "v2:1", ref)
    kept = homes.cli(home, ["run", "--rm", ref, "cat", "/etc/version"])  # missing: the store's
    assert (kept.returncode, kept.stdout, kept.stderr) == (0, "1\n", "")
    moved = homes.cli(home, ["run", "--rm", "--pull=always", ref, "cat", "/etc/version"])
    assert (moved.returncode, moved.stdout) == (0, "2\n"), moved.stderr
    assert f"Status: Downloaded newer image for {ref}" in moved.stderr
    same = homes.cli(home, ["run", "--rm", "--pull=always", ref, "cat", "/etc/version"])
    assert (same.returncode, same.stdout) == (0, "2\n"), same.stderr
    assert f"Status: Image is up to date for {ref}" in same.stderr


def test_a_failing_pull_is_one_message_with_exit_2(home: Path, registry: RegistryServer) -> None:
    unknown = f"{registry.host}/pull/nothing-here:1"
    done = homes.cli(home, ["run", "--rm", unknown, "true"])
    assert done.returncode == 2
    assert f"no image '{unknown}' in the store, and pulling it failed" in done.stderr
    assert "Traceback" not in done.stderr
    closed = f"127.0.0.1:{free_port()}/pull/busybox:1"
    down = homes.cli(home, ["run", "--rm", closed, "true"])
    assert down.returncode == 2
    assert f"no image '{closed}' in the store, and pulling it failed" in down.stderr
    assert "cannot connect" in down.stderr and "Traceback" not in down.stderr
    always = homes.cli(home, ["run", "--rm", "--pull=always", closed, "true"])
    assert always.returncode == 2 and f"cannot pull '{closed}'" in always.stderr


def test_detached_run_prints_only_the_id_on_stdout(home: Path, remote: str) -> None:
    done = homes.cli(home, ["run", "-d", "--rm", remote, "true"])
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) == 64 and "Pulling from" in done.stderr
    deadline = time.monotonic() + 20
    while any((home / "containers").glob("[!.]*")):  # --rm: gone once it exited
        assert time.monotonic() < deadline, "the detached container stayed"
        time.sleep(0.1)


def test_api_run_pulls_silently_and_takes_the_policy(
    home: Path, remote: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    with pytest.raises(ImageNotFoundError, match="--pull=never"):
        envkit.run(remote, ["true"], pull="never")
    with pytest.raises(SpecError, match="pull"):
        envkit.run(remote, ["true"], pull="sometimes")
    capfd.readouterr()
    with envkit.run(envkit.Image.from_(remote), ["cat", "/etc/version"]) as c:
        assert c.wait() == 0
        assert c.logs() == "1\n"
    with envkit.run(remote, ["true"], remove=True) as c:  # leaving the block after
        assert c.wait() == 0  # --rm took the record must not wait for it
    assert capfd.readouterr() == ("", "")


def test_run_of_a_stored_image_never_imports_the_registry_client(home: Path, remote: str) -> None:
    assert homes.cli(home, ["pull", "-q", remote]).returncode == 0
    code = (
        "import sys\nfrom envkit.cli import main\nassert main(sys.argv[1:]) == 0\n"
        "print(sorted(m for m in sys.modules if m == 'requests' or m == 'envkit.pulling'"
        " or m.startswith('envkit.registry')))\n"
    )
    for _ in range(2):  # first from the store, then from the run cache
        done = subprocess.run(
            [sys.executable, "-c", code, "run", "--rm", remote, "true"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "ENVKIT_HOME": str(home)},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]"


# pid 1 with a TERM handler: `down` does not wait out the grace period.
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; sleep 30 & wait"]
STACK = """\
from envkit import Service, Stack

SLEEP = {sleep!r}

stack = Stack(
    "pulled",
    services=[
        Service("app", image="{ref}", command=SLEEP),
        Service("other", image="{ref}", command=SLEEP),
    ],
)
"""


def test_up_pulls_a_missing_service_image_and_says_so(
    home: Path, remote: str, tmp_path: Path
) -> None:
    stack_file = tmp_path / "stack.py"
    stack_file.write_text(STACK.format(ref=remote, sleep=SLEEP))
    never = homes.cli(home, ["up", "-d", "--pull=never", str(stack_file)])
    assert never.returncode == 2
    assert "Service('app').image" in never.stderr and f"envkit pull {remote}" in never.stderr
    up = homes.cli(home, ["up", "-d", str(stack_file)], timeout=120)
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout == ""
        assert f"pulled: app: pulling {remote} (not in the store)" in up.stderr
        assert f"pulled: app: pulled {remote} (sha256:" in up.stderr
        assert "Downloaded newer image" in up.stderr
        assert "other: pulling" not in up.stderr  # one pull per reference
    finally:
        down = homes.cli(home, ["down", str(stack_file)], timeout=120)
        assert down.returncode == 0, down.stderr
    again = homes.cli(home, ["up", "-d", str(stack_file)], timeout=120)
    try:
        assert again.returncode == 0, again.stderr
        assert "pulling" not in again.stderr  # in the store now
    finally:
        assert homes.cli(home, ["down", str(stack_file)], timeout=120).returncode == 0


def test_stack_up_from_python_pulls_with_the_policy(
    home: Path, source: Path, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    ref = f"{registry.host}/pull/api:1"
    _push(source, "v2:1", ref)
    stack = envkit.Stack("api-pulled", services=[envkit.Service("app", image=ref, command=SLEEP)])
    with pytest.raises(ImageNotFoundError, match=r"Service\('app'\)\.image"):
        stack.up(pull="never")
    with stack.up(pull="always") as running:
        assert running["app"].exec(["cat", "/etc/version"]) == (0, "2\n")
