"""The registry client against a real ``docker-registry`` on 127.0.0.1: plain HTTP, TLS
from a test CA, htpasswd basic auth; round trips, skopeo interop in both directions, and
a pull killed mid-transfer that resumes without leaving a corrupt blob."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.errors import RegistryError
from envkit.oci.archive_read import load_archive
from envkit.registry import pull, push
from envkit.store.store import Store
from tests import images
from tests.integration.registry_server import RegistryServer, ThrottledProxy, missing_tools

pytestmark = pytest.mark.peers

if missing_tools() or not images.have_busybox():
    pytest.skip(
        f"needs {', '.join(missing_tools()) or 'busybox-static'} "
        "(apt-get install docker-registry openssl apache2-utils busybox-static)",
        allow_module_level=True,
    )

PASSWORD = "test-Pa55word"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(
        tmp_path_factory.mktemp("registry-tls"), tls=True, users={"alice": PASSWORD}
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(
        tmp_path_factory.mktemp("registry-auth"), users={"alice": PASSWORD}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store.default()


def load_busybox(store: Store, tmp_path: Path, extra: list[bytes] | None = None, **kw: str) -> str:
    archive = tmp_path / "busybox.tar"
    built = images.build_archive(archive, [images.busybox_layer(), *(extra or [])], **kw)
    load_archive(archive, store)
    return built.manifest_digest


def fresh_store(tmp_path: Path, name: str) -> Store:
    return Store(tmp_path / name)


def test_push_then_pull_round_trip(registry: RegistryServer, store: Store, tmp_path: Path) -> None:
    digest = load_busybox(store, tmp_path, [images.random_layer(1, 2_000_000)], compression="zstd")
    ref = f"{registry.host}/test/busybox:1"
    pushed = push("busybox:1", ref, store)
    assert pushed.digest == digest and pushed.uploaded == 3
    again = push("busybox:1", ref, store)
    assert again.uploaded == 0 and again.existing == 3
    other = fresh_store(tmp_path, "other")
    pulled = pull(ref, other)
    assert pulled.descriptor.digest == digest
    assert other.resolve(ref).digest == digest
    assert other.fsck().ok
    assert {other.read_blob(d) == store.read_blob(d) for d in other.blobs()} == {True}


def test_push_mounts_from_a_repository_the_store_pulled(
    registry: RegistryServer, store: Store, tmp_path: Path
) -> None:
    load_busybox(store, tmp_path, compression="")
    push("busybox:1", f"{registry.host}/base/busybox:1", store)
    store.tag(f"{registry.host}/base/busybox:1", store.resolve("busybox:1"))
    got = push("busybox:1", f"{registry.host}/team/app:1", store)
    assert got.mounted == 2 and got.uploaded == 0


def test_cli_pull_prints_plain_lines_and_the_ref(
    registry: RegistryServer, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_busybox(store, tmp_path)
    assert main(["push", "busybox:1", f"{registry.host}/cli/busybox:2"]) == 0
    store.remove("busybox:1")
    capsys.readouterr()
    assert main(["pull", f"{registry.host}/cli/busybox:2"]) == 0
    out = capsys.readouterr().out
    # docker pull's lines; every layer is new (the store removed the image's blobs).
    lines = out.splitlines()
    assert lines[0] == "2: Pulling from cli/busybox", out
    layers = lines[1:-3]
    assert layers and all(re.fullmatch(r"[0-9a-f]{12}: Pull complete", ln) for ln in layers), out
    assert re.fullmatch(r"Digest: sha256:[0-9a-f]{64}", lines[-3]), out
    assert lines[-2:] == [
        f"Status: Downloaded newer image for {registry.host}/cli/busybox:2",
        f"{registry.host}/cli/busybox:2",
    ], out
    assert main(["pull", f"{registry.host}/cli/busybox:nope"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "cli/busybox" in err and "Traceback" not in err


def test_skopeo_pushes_envkit_pulls(registry: RegistryServer, store: Store, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    built = images.build_layout(layout, ref="sk:1")
    subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:sk:1",
         f"docker://{registry.host}/skopeo/img:1"],
        check=True, capture_output=True,
    )  # fmt: skip
    pulled = pull(f"{registry.host}/skopeo/img:1", store)
    assert pulled.descriptor.digest == built.manifest_digest
    assert store.fsck().ok


def test_envkit_pushes_skopeo_pulls(registry: RegistryServer, store: Store, tmp_path: Path) -> None:
    digest = load_busybox(store, tmp_path)
    push("busybox:1", f"{registry.host}/envkit/img:1", store)
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         f"docker://{registry.host}/envkit/img:1"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert images.sha256(out) == digest
    dest = tmp_path / "copy"
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", f"docker://{registry.host}/envkit/img:1",
         f"oci:{dest}:x"],
        check=True, capture_output=True,
    )  # fmt: skip
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest


def test_tls_with_the_test_ca_and_basic_auth(
    tls_registry: RegistryServer, store: Store, tmp_path: Path, envkit_home: Path
) -> None:
    load_busybox(store, tmp_path)
    ref = f"{tls_registry.host}/secure/busybox:1"
    with pytest.raises(RegistryError, match="certificate verify failed"):
        push("busybox:1", ref, store)
    certs = envkit_home / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    assert tls_registry.ca is not None
    shutil.copy(tls_registry.ca, certs / "ca.crt")
    with pytest.raises(RegistryError, match=f"envkit login {tls_registry.host}"):
        push("busybox:1", ref, store)
    from envkit.registry.credentials import Credentials
    from envkit.registry.login import login

    login(tls_registry.host, Credentials("alice", PASSWORD))
    pushed = push("busybox:1", ref, store)
    assert pull(ref, fresh_store(tmp_path, "b")).descriptor.digest == pushed.digest


def test_cli_login_over_plain_http_then_push(
    auth_registry: RegistryServer,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    load_busybox(store, tmp_path)
    ref = f"{auth_registry.host}/private/busybox:1"
    assert main(["push", "busybox:1", ref]) == 2
    assert f"envkit login {auth_registry.host}" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("wrong\n"))
    assert main(["login", "-u", "alice", "--password-stdin", auth_registry.host]) == 2
    err = capsys.readouterr().err
    assert "login failed" in err and "wrong" not in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["login", "-u", "alice", "--password-stdin", auth_registry.host]) == 0
    out = capsys.readouterr().out
    assert "Login Succeeded" in out and PASSWORD not in out
    assert main(["push", "-q", "busybox:1", ref]) == 0
    assert main(["logout", auth_registry.host]) == 0
    assert main(["pull", ref]) == 2


def test_killed_pull_resumes_and_never_leaves_a_corrupt_blob(
    registry: RegistryServer, store: Store, tmp_path: Path, envkit_home: Path
) -> None:
    big = images.random_layer(9, 16_000_000, files=2)
    source = fresh_store(tmp_path, "source")
    digest = load_busybox(source, tmp_path, [big], compression="")
    with ThrottledProxy(registry.port, rate=4 << 20) as proxy:
        ref = f"{proxy.host}/big/img:1"
        push("busybox:1", f"{registry.host}/big/img:1", source)
        env = {**os.environ, "ENVKIT_HOME": str(envkit_home)}
        child = subprocess.Popen(
            [sys.executable, "-m", "envkit", "pull", "-q", ref],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        partial: list[Path] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            partial = [
                p for p in store.tmp_dir.glob("pull-*.partial") if p.stat().st_size > 1 << 20
            ]
            if partial:
                break
            time.sleep(0.02)
        assert partial, "the pull finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        report = store.fsck()
        assert report.ok, report
        # Layers download in parallel: the other layer may be part-way too.
        assert f"tmp/{partial[0].name}" in report.resumable
        assert all(p.startswith("tmp/pull-") for p in report.resumable)
        assert store.refs() == {}
        kept = partial[0].stat().st_size
        assert kept > 0
        pulled = pull(ref, store)
    assert pulled.descriptor.digest == digest
    assert not partial[0].exists()
    assert store.fsck().ok


def test_ref_image_source_pulls_a_missing_base(
    registry: RegistryServer, store: Store, tmp_path: Path
) -> None:
    from envkit.plugins.manager import PluginManager

    digest = load_busybox(store, tmp_path)
    push("busybox:1", f"{registry.host}/bases/busybox:1", store)
    other = fresh_store(tmp_path, "other")
    source = PluginManager(load_entry_points=False).image_source("ref")
    desc = source.provide({"ref": f"{registry.host}/bases/busybox:1"}, other)
    assert desc.digest == digest
    assert other.resolve(f"{registry.host}/bases/busybox:1").digest == digest
    pinned = source.provide({"ref": f"{registry.host}/bases/busybox:9", "digest": digest}, other)
    assert pinned.digest == digest


def test_warm_pull_and_push_import_no_heavy_module(
    registry: RegistryServer, store: Store, tmp_path: Path, envkit_home: Path
) -> None:
    from tests.unit.registry.test_imports import NOT_BY_REQUESTS as HEAVY

    load_busybox(store, tmp_path)
    ref = f"{registry.host}/warm/busybox:1"
    push("busybox:1", ref, store)
    pull(ref, store)
    code = (
        "import sys\nfrom envkit.cli import main\nassert main(sys.argv[1:]) == 0\n"
        f"print(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    )
    for argv in (["pull", "-q", ref], ["push", "-q", "busybox:1", ref]):
        done = subprocess.run(
            [sys.executable, "-c", code, *argv],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "ENVKIT_HOME": str(envkit_home)},
        )
        assert done.stdout.strip().splitlines()[-1] == "[]", (argv, done.stdout)
