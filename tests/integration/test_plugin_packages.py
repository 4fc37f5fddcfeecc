"""Plugin packages installed as users install them: into a fresh virtualenv, with pip.

- the plugin author's guide, its files written from the guide's code blocks;
- plugins/envkit-oci-volumes: listed by ``envkit plugins``, its own tests (the
  conformance suite against a real registry) pass installed, and ``envkit up`` of
  examples/plugins/oci-seeded-stack starts a service on a volume seeded from the registry;
- the built-in backends pass the conformance suite's container tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from envkit.builtin.volumes import LocalVolumes, TmpfsVolumes
from envkit.plugins.interfaces import VolumeBackend
from envkit.testing.backend_suite import BackendSuite
from tests.integration import homes
from tests.integration.registry_server import RegistryServer, missing_tools

ROOT = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"


def sh(
    argv: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = env or {k: v for k, v in os.environ.items() if k != "ENVKIT_DEBUG"}
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=600, env=env, cwd=cwd
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv of the system Python with envkit installed from this repo."""
    if not Path(PYTHON).exists():
        pytest.skip(f"{PYTHON} missing")
    path = tmp_path_factory.mktemp("fresh") / "venv"
    ok(sh([PYTHON, "-m", "venv", str(path)]))
    ok(sh([str(path / "bin/pip"), "install", "-q", str(ROOT), "pytest"]))
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    if "docker-registry" in missing_tools():
        pytest.skip("docker-registry missing")
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


def guide_files(text: str) -> dict[str, str]:
    """The code blocks of the guide whose first line is ``# file: PATH``."""
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", text, re.S):
        first, _, rest = block.partition("\n")
        if first.startswith("# file: "):
            files[first.removeprefix("# file: ").strip()] = rest
    return files


@pytest.mark.slow
def test_the_plugin_guide_from_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    files = guide_files((ROOT / "docs/plugin-guide.md").read_text())
    assert set(files) == {
        "pyproject.toml",
        "envkit_hello/__init__.py",
        "envkit_hello/plugin.py",
        "envkit_hello/backend.py",
        "tests/test_backend.py",
    }
    project = tmp_path / "envkit-hello"
    for name, body in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(body)
    ok(sh([str(venv / "bin/pip"), "install", "-q", str(project)], cwd=tmp_path))
    env = {"PATH": "/usr/bin:/bin", "ENVKIT_HOME": str(tmp_path / "home")}
    listing = ok(sh([str(venv / "bin/envkit"), "plugins"], env=env))
    assert "envkit-hello 0.1.0" in listing and "scratch" in listing
    assert ok(sh([str(venv / "bin/envkit"), "hello", "world"], env=env)) == "hello, world\n"
    tests = sh([str(venv / "bin/pytest"), "-q", "-p", "no:cacheprovider", "tests"], cwd=project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout


@pytest.fixture(scope="module")
def oci_venv(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Installed from a copy: pip's build writes build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("oci-volumes") / "envkit-oci-volumes"
    leftovers = shutil.ignore_patterns("build", "*.egg-info", ".pytest_cache", "__pycache__")
    shutil.copytree(ROOT / "plugins/envkit-oci-volumes", source, ignore=leftovers)
    ok(sh([str(venv / "bin/pip"), "install", "-q", str(source)]))
    return venv


@pytest.mark.slow
def test_oci_volumes_plugin_installed_passes_its_tests(oci_venv: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ENVKIT_HOME": str(tmp_path / "home")}
    listing = ok(sh([str(oci_venv / "bin/envkit"), "plugins"], env=env))
    assert "envkit-oci-volumes 0.1.0" in listing
    assert re.search(r"volume backends: .*\boci\b", listing)
    suite = sh(
        [str(oci_venv / "bin/pytest"), "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT / "plugins/envkit-oci-volumes",
        env={**env, "ENVKIT_REPO": str(ROOT)},
    )
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "failed" not in suite.stdout and " passed" in suite.stdout


@pytest.fixture(scope="module")
def busybox_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ENVKIT_HOME holding busybox:1 (user namespaces needed to run it)."""
    return homes.loaded_home(tmp_path_factory.mktemp("bb"), ref="busybox:1")


@pytest.mark.slow
@pytest.mark.rootless
def test_envkit_up_with_a_volume_seeded_from_a_registry(
    oci_venv: Path, registry: RegistryServer, busybox_home: Path
) -> None:
    repo = f"{registry.host}/ci/seed"
    env = {"PATH": "/usr/bin:/bin", "ENVKIT_HOME": str(busybox_home), "SEED_REPO": repo}
    seed = (
        "from envkit.plugins.manager import get_manager\n"
        "oci = get_manager().volume_backend('oci')\n"
        f"oci.create('seed-source', {{'repository': {repo!r}}})\n"
        "(oci.mountpoint('seed-source') / 'hello.txt').write_text('hello from the registry\\n')\n"
        "print(oci.snapshot('seed-source', 'v1').location)\n"
    )
    assert ok(sh([str(oci_venv / "bin/python"), "-c", seed], env=env)).strip() == f"{repo}:v1"
    example = ROOT / "examples/plugins/oci-seeded-stack"
    envkit = str(oci_venv / "bin/envkit")
    ok(sh([envkit, "up", "-d"], cwd=example, env=env))
    try:
        wait_for(
            lambda: (
                "reader | hello from the registry"
                in sh([envkit, "stack", "logs", "-p", "seeded"], env=env).stdout
            )
        )
    finally:
        ok(sh([envkit, "down", "-v"], cwd=example, env=env))
    volumes = ok(sh([envkit, "volume", "ls"], env=env))
    assert "seeded_seed" not in volumes


@pytest.mark.rootless
class TestLocalWithContainers(BackendSuite):
    @pytest.fixture
    def backend(self, busybox_home: Path, monkeypatch: pytest.MonkeyPatch) -> VolumeBackend:
        monkeypatch.setenv("ENVKIT_HOME", str(busybox_home))
        return LocalVolumes()

    @pytest.fixture
    def container_image(self) -> str | None:
        return "busybox:1"


@pytest.mark.rootless
class TestTmpfsWithContainers(TestLocalWithContainers):
    options = {"size": "4m"}

    @pytest.fixture
    def backend(self, busybox_home: Path, monkeypatch: pytest.MonkeyPatch) -> VolumeBackend:
        monkeypatch.setenv("ENVKIT_HOME", str(busybox_home))
        return TmpfsVolumes()
