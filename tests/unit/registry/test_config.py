"""Credentials (envkit's file, docker's config, credential helpers), endpoints (plain HTTP
rules, certs.d CAs, mirrors) and the login/logout commands."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.registry import credentials
from envkit.registry.credentials import Credentials
from envkit.registry.endpoints import endpoint, is_loopback, mirrors_for
from envkit.registry.login import login, registry_name
from tests.unit.registry.test_fakes import FakeNet, FakeRegistry, client_factory

SECRET = "hunter2-secret"


@pytest.fixture
def docker_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "docker"
    path.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(path))
    return path


def test_saved_credentials_are_private_and_read_back(envkit_home: Path, docker_dir: Path) -> None:
    path = credentials.save("127.0.0.1:5000", Credentials("alice", SECRET))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.lookup("127.0.0.1:5000") == Credentials("alice", SECRET)
    assert credentials.erase("127.0.0.1:5000")
    assert credentials.lookup("127.0.0.1:5000") is None
    assert not credentials.erase("127.0.0.1:5000")


def test_docker_config_auths_for_docker_hub(envkit_home: Path, docker_dir: Path) -> None:
    encoded = base64.b64encode(f"bob:{SECRET}".encode()).decode()
    config = {"auths": {"https://index.docker.io/v1/": {"auth": encoded}}}
    (docker_dir / "config.json").write_text(json.dumps(config))
    assert credentials.lookup("docker.io") == Credentials("bob", SECRET)
    assert credentials.lookup("quay.io") is None


def test_envkit_file_wins_over_docker_config(envkit_home: Path, docker_dir: Path) -> None:
    encoded = base64.b64encode(b"docker-user:x").decode()
    (docker_dir / "config.json").write_text(json.dumps({"auths": {"r.test": {"auth": encoded}}}))
    credentials.save("r.test", Credentials("envkit-user", SECRET))
    assert credentials.lookup("r.test") == Credentials("envkit-user", SECRET)


def _helper(bin_dir: Path, name: str, known: str) -> None:
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read server\n"
        f'if [ "$server" = "{known}" ]; then\n'
        f'  echo \'{{"ServerURL":"{known}","Username":"helper-user","Secret":"{SECRET}"}}\'\n'
        "else echo 'credentials not found in native keychain'; exit 1; fi\n"
    )
    script.chmod(0o755)


def test_cred_helpers_and_creds_store(
    envkit_home: Path, docker_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _helper(bin_dir, "fake", "r.test")
    _helper(bin_dir, "hub", "https://index.docker.io/v1/")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    config = {"credHelpers": {"r.test": "fake"}, "credsStore": "hub"}
    (docker_dir / "config.json").write_text(json.dumps(config))
    assert credentials.lookup("r.test") == Credentials("helper-user", SECRET)
    assert credentials.lookup("docker.io") == Credentials("helper-user", SECRET)
    assert credentials.lookup("other.test") is None  # the store's helper knows nothing


def test_missing_helper_is_a_clear_error(envkit_home: Path, docker_dir: Path) -> None:
    (docker_dir / "config.json").write_text(json.dumps({"credHelpers": {"r.test": "nope"}}))
    with pytest.raises(Exception, match="docker-credential-nope"):
        credentials.lookup("r.test")


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("127.0.0.1:5000", True),
        ("127.8.0.1", True),
        ("localhost:80", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("registry.test", False),
    ],
)
def test_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_endpoints_follow_docker_rules(envkit_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = endpoint("docker.io")
    assert hub.host == "registry-1.docker.io" and hub.urls() == ["https://registry-1.docker.io"]
    assert endpoint("127.0.0.1:5000").urls() == ["http://127.0.0.1:5000", "https://127.0.0.1:5000"]
    assert endpoint("10.1.1.1:5000").urls() == ["https://10.1.1.1:5000"]
    monkeypatch.setenv("ENVKIT_INSECURE_REGISTRIES", "10.1.1.1:5000, other:1")
    insecure = endpoint("10.1.1.1:5000")
    assert "http://10.1.1.1:5000" in insecure.urls() and insecure.verify is False
    ca = envkit_home / "certs.d" / "reg.test:5443" / "ca.crt"
    ca.parent.mkdir(parents=True)
    ca.write_text("pem")
    assert endpoint("reg.test:5443").verify == str(ca)
    assert endpoint("localhost:5443").urls()[0] == "http://localhost:5443"


def test_mirrors_by_registry(monkeypatch: pytest.MonkeyPatch, envkit_home: Path) -> None:
    monkeypatch.setenv("ENVKIT_REGISTRY_MIRRORS", "docker.io=127.0.0.1:5000,quay.io=m:1")
    assert mirrors_for("docker.io") == ["127.0.0.1:5000"]
    assert mirrors_for("ghcr.io") == []


def test_registry_names_users_type() -> None:
    assert registry_name("https://index.docker.io/v1/") == "docker.io"
    assert registry_name("localhost:5000/") == "localhost:5000"


def test_login_checks_then_saves(envkit_home: Path, docker_dir: Path) -> None:
    reg = FakeRegistry(auth="bearer", users={"alice": SECRET}, anonymous_pull=False)
    factory = client_factory(FakeNet(reg))
    with pytest.raises(Exception, match="login failed") as info:
        login("registry.test", Credentials("alice", "wrong"), client_factory=factory)
    assert "wrong" not in str(info.value)
    assert credentials.lookup("registry.test") is None
    login("registry.test", Credentials("alice", SECRET), client_factory=factory)
    assert credentials.lookup("registry.test") == Credentials("alice", SECRET)
    assert SECRET not in (envkit_home / "auth.json").read_text()  # base64, as docker keeps it


def test_cli_logout_and_login_errors(
    envkit_home: Path, docker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials.save("r.test", Credentials("u", SECRET))
    assert main(["logout", "r.test"]) == 0
    assert "Removing login credentials for r.test" in capsys.readouterr().out
    assert credentials.lookup("r.test") is None
    assert main(["login", "--password-stdin", "r.test"]) == 2
    assert "no user name given" in capsys.readouterr().err


def test_cli_pull_of_an_unreachable_registry_exits_2(
    envkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 on loopback: nothing listens, so both schemes are refused at once.
    assert main(["pull", "-q", "127.0.0.1:9/none/img:1"]) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1:9" in err and "Traceback" not in err


@pytest.mark.parametrize("present", ["client.cert", "client.key"])
def test_a_client_certificate_without_its_pair_is_one_clear_error(
    envkit_home: Path, present: str
) -> None:
    """docker refuses a certs.d folder with a certificate and no key (or the reverse)
    instead of going on without a client certificate."""
    from envkit.errors import RegistryError

    certs = envkit_home / "certs.d" / "reg.test:5443"
    certs.mkdir(parents=True)
    (certs / present).write_text("pem")
    missing = "client.key" if present == "client.cert" else "client.cert"
    with pytest.raises(RegistryError, match=f"{missing}") as caught:
        endpoint("reg.test:5443")
    assert str(certs) in str(caught.value.hint)


def test_a_client_certificate_pair_is_used(envkit_home: Path) -> None:
    certs = envkit_home / "certs.d" / "reg.test:5443"
    certs.mkdir(parents=True)
    (certs / "client.cert").write_text("pem")
    (certs / "client.key").write_text("pem")
    got = endpoint("reg.test:5443").client_cert
    assert got == (str(certs / "client.cert"), str(certs / "client.key"))
