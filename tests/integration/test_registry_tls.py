"""The registry client's TLS against a real ``docker-registry`` on 127.0.0.1: a CA from
``certs.d``, a wrong CA, and a registry that requires client certificates (none, one
from an unknown CA, the right one). TLS failures are one error with the right fix, never
retried, and exit 2 through the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.errors import RegistryError
from envkit.oci.archive_read import load_archive
from envkit.registry import pull, push
from envkit.store.store import Store
from tests import images
from tests.integration.registry_server import RegistryServer, make_ca_and_cert, missing_tools
from tests.unit.http_servers import make_client_cert

pytestmark = pytest.mark.peers

if missing_tools() or not images.have_busybox():
    pytest.skip(
        f"needs {', '.join(missing_tools()) or 'busybox-static'} "
        "(apt-get install docker-registry openssl apache2-utils busybox-static)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def client_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ca, _, _ = make_ca_and_cert(tmp_path_factory.mktemp("client-ca"))
    return ca


@pytest.fixture(scope="module")
def mtls_registry(
    tmp_path_factory: pytest.TempPathFactory, client_ca: Path
) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry-mtls"), client_ca=client_ca).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry-tls"), tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def store(envkit_home: Path, tmp_path: Path) -> Store:
    store = Store.default()
    archive = tmp_path / "busybox.tar"
    images.build_archive(archive, [images.busybox_layer()])
    load_archive(archive, store)
    return store


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's retry sleeps (recorded, not slept)."""
    seen: list[float] = []
    monkeypatch.setattr("envkit.registry.client.time.sleep", seen.append)
    return seen


def _certs(envkit_home: Path, server: RegistryServer) -> Path:
    certs = envkit_home / "certs.d" / server.host
    certs.mkdir(parents=True, exist_ok=True)
    assert server.ca is not None
    shutil.copy(server.ca, certs / "ca.crt")
    return certs


def test_a_ca_in_certs_d_is_trusted(
    tls_registry: RegistryServer, store: Store, envkit_home: Path, tmp_path: Path
) -> None:
    _certs(envkit_home, tls_registry)
    ref = f"{tls_registry.host}/ca/busybox:1"
    pushed = push("busybox:1", ref, store)
    assert pull(ref, Store(tmp_path / "other")).descriptor.digest == pushed.digest


def test_a_wrong_ca_is_a_tls_error_naming_the_ca_file(
    tls_registry: RegistryServer,
    store: Store,
    envkit_home: Path,
    tmp_path: Path,
    sleeps: list[float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    certs = envkit_home / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    other_ca, _, _ = make_ca_and_cert(tmp_path / "other")
    shutil.copy(other_ca, certs / "ca.crt")
    ref = f"{tls_registry.host}/ca/busybox:1"
    with pytest.raises(RegistryError, match="certificate verify failed") as caught:
        push("busybox:1", ref, store)
    assert str(certs / "ca.crt") in str(caught.value)
    assert "ca.crt" in str(caught.value.hint)
    assert sleeps == []
    assert main(["pull", ref]) == 2
    err = capsys.readouterr().err
    assert "TLS failed" in err and "Traceback" not in err


@pytest.mark.parametrize("sent", ["none", "unknown CA"])
def test_a_refused_client_certificate_is_one_clear_error(
    mtls_registry: RegistryServer,
    store: Store,
    envkit_home: Path,
    tmp_path: Path,
    sleeps: list[float],
    sent: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    certs = _certs(envkit_home, mtls_registry)
    if sent == "unknown CA":
        stranger, _, _ = make_ca_and_cert(tmp_path / "stranger")
        crt, key = make_client_cert(tmp_path / "stranger", stranger)
        shutil.copy(crt, certs / "client.cert")
        shutil.copy(key, certs / "client.key")
    ref = f"{mtls_registry.host}/mtls/busybox:1"
    with pytest.raises(RegistryError, match="client certificate") as caught:
        push("busybox:1", ref, store)
    hint = str(caught.value.hint)
    assert "client.cert" in hint and "running" not in hint
    assert sleeps == []  # not retried
    assert main(["push", "busybox:1", ref]) == 2
    err = capsys.readouterr().err
    assert "client certificate" in err and "Traceback" not in err


def test_the_right_client_certificate_is_accepted(
    mtls_registry: RegistryServer,
    client_ca: Path,
    store: Store,
    envkit_home: Path,
    tmp_path: Path,
) -> None:
    certs = _certs(envkit_home, mtls_registry)
    crt, key = make_client_cert(client_ca.parent, client_ca, "envkit-client")
    shutil.copy(crt, certs / "client.cert")
    shutil.copy(key, certs / "client.key")
    ref = f"{mtls_registry.host}/mtls/busybox:1"
    pushed = push("busybox:1", ref, store)
    assert pull(ref, Store(tmp_path / "other")).descriptor.digest == pushed.digest
