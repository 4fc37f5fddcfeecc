"""The oci backend: the conformance suite against a real registry, seeding, the format."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Protocol

import pytest
from envkit_oci_volumes import ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, OciVolumes

from envkit.errors import SpecError, VolumeError
from envkit.plugins import VolumeBackend
from envkit.testing.backend_suite import BackendSuite


class Registry(Protocol):
    """What these tests use of the ``registry`` fixture (envkit's test registry server)."""

    host: str  # 127.0.0.1:PORT
    url: str  # http://127.0.0.1:PORT


class TestOciBackend(BackendSuite):
    bad_options = {"repository": "Not A Repo!"}

    @pytest.fixture(autouse=True)
    def _options(self, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
        # The suite reads the class attribute; the registry's address is known only now.
        monkeypatch.setattr(type(self), "options", {"repository": f"{registry.host}/envkit/suite"})

    @pytest.fixture
    def backend(self, home: Path) -> VolumeBackend:
        return OciVolumes()


def test_a_snapshot_seeds_a_volume_on_another_machine(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = f"{registry.host}/ci/seed"
    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path / "machine-a"))
    a = OciVolumes()
    a.create("data", {"repository": repo})
    data = a.mountpoint("data")
    (data / "schema.sql").write_text("create table t (x int);\n")
    (data / "rows").mkdir()
    (data / "rows" / "1.csv").write_bytes(b"1,2,3\n" * 1000)
    snap = a.snapshot("data", "v1")
    assert snap.location == f"{repo}:v1"

    monkeypatch.setenv("ENVKIT_HOME", str(tmp_path / "machine-b"))
    b = OciVolumes()
    b.create("data", {"repository": repo, "seed": "v1"})
    seeded = b.mountpoint("data")
    assert (seeded / "schema.sql").read_text() == "create table t (x int);\n"
    assert (seeded / "rows" / "1.csv").read_bytes() == b"1,2,3\n" * 1000
    assert b.snapshot("data", "v1-again").digest == snap.digest  # same data, same digest


def test_the_registry_holds_an_oci_artifact(registry: Registry, home: Path) -> None:
    backend = OciVolumes()
    backend.create("art", {"repository": f"{registry.host}/envkit/art"})
    (backend.mountpoint("art") / "f").write_text("x")
    backend.snapshot("art", "t1")
    request = urllib.request.Request(
        f"{registry.url}/v2/envkit/art/manifests/t1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        manifest = json.loads(resp.read())
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"


def test_a_missing_seed_leaves_no_volume(registry: Registry, home: Path) -> None:
    backend = OciVolumes()
    with pytest.raises(VolumeError, match="no snapshot"):
        backend.create("v", {"repository": f"{registry.host}/envkit/none", "seed": "absent"})
    assert backend.list() == []


@pytest.mark.parametrize(
    "options",
    [{}, {"repository": "127.0.0.1:5000/x:tag"}, {"repository": "r/x", "seed": "../up"}],
)
def test_bad_options(options: dict[str, str], home: Path) -> None:
    with pytest.raises(SpecError):
        OciVolumes().validate(options)
