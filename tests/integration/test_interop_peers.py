"""Archives exchanged with real peers: skopeo and podman write what envkit loads, and read
what envkit saves, with the same manifest digests, layer digests and image ids.

podman runs against a private store in a temp dir (``--root``/``--runroot``, vfs driver),
so these tests never touch the machine's podman images.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from envkit.store.store import Store
from tests import images

pytestmark = pytest.mark.peers

PEERS = ("podman", "skopeo")


def _missing() -> str:
    absent = [tool for tool in PEERS if shutil.which(tool) is None]
    if absent:
        return f"{' and '.join(absent)} not installed (apt-get install podman skopeo)"
    if not images.have_busybox():
        return "busybox-static not installed (apt-get install busybox-static)"
    return ""


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


class Podman:
    """podman with a private, throwaway store."""

    def __init__(self, base: Path) -> None:
        self.argv = [
            "podman",
            "--root",
            str(base / "root"),
            "--runroot",
            str(base / "runroot"),
            "--tmpdir",
            str(base / "tmp"),
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
        ]

    def __call__(self, *args: str) -> str:
        return run([*self.argv, *args])

    def inspect(self, image: str) -> dict[str, object]:
        [data] = json.loads(self("image", "inspect", image))
        assert isinstance(data, dict)
        return data


class Envkit:
    """The envkit CLI in a subprocess, with its own ENVKIT_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "ENVKIT_HOME": str(home)}
        self.env.pop("ENVKIT_DEBUG", None)

    def __call__(self, *args: str) -> str:
        return run([sys.executable, "-m", "envkit", *args], env=self.env)

    def inspect(self, image: str) -> dict[str, object]:
        [data] = json.loads(self("inspect", image))
        assert isinstance(data, dict)
        return data

    def store(self) -> Store:
        return Store(self.home / "store")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    base = tmp_path_factory.mktemp("podman")
    tool = Podman(base)
    try:
        tool("info")
    except AssertionError as exc:
        pytest.skip(f"podman cannot run here with a private store: {exc}")
    yield tool
    subprocess.run([*tool.argv, "rmi", "--all", "--force"], capture_output=True, check=False)


@pytest.fixture
def envkit(tmp_path: Path) -> Envkit:
    return Envkit(tmp_path / "envkit-home")


@pytest.fixture(scope="module")
def skopeo_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, images.BuiltImage]:
    """A busybox-static image: OCI layout by the factory, archived by skopeo."""
    base = tmp_path_factory.mktemp("skopeo")
    built = images.build_layout(base / "layout", ref="busybox:1")
    archive = base / "busybox.tar"
    run(["skopeo", "copy", f"oci:{base / 'layout'}:busybox:1", f"oci-archive:{archive}:busybox:1"])
    return archive, built


def skopeo_inspect(archive: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inspect output, raw manifest) of the single image of an OCI archive."""
    info = json.loads(run(["skopeo", "inspect", f"oci-archive:{archive}"]))
    raw = json.loads(run(["skopeo", "inspect", "--raw", f"oci-archive:{archive}"]))
    return info, raw


def test_skopeo_archive_round_trips_through_envkit_to_podman(
    tmp_path: Path,
    envkit: Envkit,
    podman: Podman,
    skopeo_archive: tuple[Path, images.BuiltImage],
) -> None:
    archive, built = skopeo_archive
    assert envkit("load", "-i", str(archive)) == "Loaded image: busybox:1\n"
    listing = envkit("images", "--no-trunc")
    assert "busybox" in listing
    assert built.config_digest in listing

    out = tmp_path / "out.tar"
    envkit("save", "busybox:1", "-o", str(out))

    info, raw = skopeo_inspect(out)
    assert info["Digest"] == built.manifest_digest
    assert info["Layers"] == list(built.layer_digests)
    assert raw["config"]["digest"] == built.config_digest

    assert (
        podman("load", "-i", str(out)).strip().endswith("Loaded image: docker.io/library/busybox:1")
    )
    seen = podman.inspect("docker.io/library/busybox:1")
    assert seen["Id"] == built.config_digest.split(":")[1]
    assert seen["Digest"] == built.manifest_digest
    podman("rmi", "docker.io/library/busybox:1")


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_save_loads_into_envkit(
    tmp_path: Path,
    envkit: Envkit,
    podman: Podman,
    skopeo_archive: tuple[Path, images.BuiltImage],
    fmt: str,
) -> None:
    archive, built = skopeo_archive
    podman("load", "-i", str(archive))  # named localhost/busybox:1 by podman
    expected = podman.inspect("localhost/busybox:1")
    saved = tmp_path / f"podman-{fmt}.tar"
    podman("save", "--format", fmt, "-o", str(saved), "localhost/busybox:1")

    assert envkit("load", str(saved)) == "Loaded image: localhost/busybox:1\n"
    mine = envkit.inspect("localhost/busybox:1")
    assert mine["Id"] == "sha256:" + str(expected["Id"])
    assert mine["Id"] == built.config_digest
    manifest = mine["Manifest"]
    assert isinstance(manifest, dict)
    if fmt == "oci-archive":
        # podman re-compresses layers on save: compare with what skopeo reads from the file.
        info, _ = skopeo_inspect(saved)
        assert manifest["Digest"] == info["Digest"]
    store = envkit.store()
    loaded = store.config(store.manifest(store.resolve("localhost/busybox:1")))
    rootfs = expected["RootFS"]
    assert isinstance(rootfs, dict)
    assert loaded.diff_ids == rootfs["Layers"] == list(built.diff_ids)
    podman("rmi", "localhost/busybox:1")


def test_compressed_podman_archive_loads_from_stdin(
    tmp_path: Path,
    envkit: Envkit,
    podman: Podman,
    skopeo_archive: tuple[Path, images.BuiltImage],
) -> None:
    archive, built = skopeo_archive
    podman("load", "-i", str(archive))
    saved = tmp_path / "podman.tar"
    podman("save", "--format", "docker-archive", "-o", str(saved), "localhost/busybox:1")
    packed = tmp_path / "podman.tar.gz"
    packed.write_bytes(gzip.compress(saved.read_bytes()))
    with packed.open("rb") as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "envkit", "load"],
            stdin=stdin,
            capture_output=True,
            text=True,
            env=envkit.env,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Loaded image: localhost/busybox:1\n"
    assert envkit.inspect("localhost/busybox:1")["Id"] == built.config_digest
    podman("rmi", "localhost/busybox:1")


def test_envkit_docker_archive_loads_into_podman(
    tmp_path: Path,
    envkit: Envkit,
    podman: Podman,
    skopeo_archive: tuple[Path, images.BuiltImage],
) -> None:
    archive, built = skopeo_archive
    envkit("load", str(archive))
    envkit("tag", "busybox:1", "me/tools:2")
    out = tmp_path / "docker.tar"
    envkit("save", "--format", "docker-archive", "-o", str(out), "busybox:1", "me/tools:2")
    loaded = podman("load", "-i", str(out))
    assert "Loaded image: docker.io/library/busybox:1" in loaded
    assert "Loaded image: docker.io/me/tools:2" in loaded
    seen = podman.inspect("docker.io/me/tools:2")
    assert seen["Id"] == built.config_digest.split(":")[1]
    rootfs = seen["RootFS"]
    assert isinstance(rootfs, dict)
    assert rootfs["Layers"] == list(built.diff_ids)
    podman("rmi", "--force", "docker.io/library/busybox:1", "docker.io/me/tools:2")


def test_corrupt_archive_from_a_peer_is_refused(
    tmp_path: Path, envkit: Envkit, skopeo_archive: tuple[Path, images.BuiltImage]
) -> None:
    archive, _ = skopeo_archive
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the busybox layer blob
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(data))
    proc = subprocess.run(
        [sys.executable, "-m", "envkit", "load", str(bad)],
        capture_output=True,
        text=True,
        env=envkit.env,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"envkit: error: {bad}: blob blobs/sha256/")
    assert "Traceback" not in proc.stderr
    assert envkit("images", "-q") == ""
