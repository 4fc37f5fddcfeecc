"""Auth flows of the registry client against the in-process fake: bearer (anonymous and
with credentials), basic, refused credentials, challenge parsing, and bounded retries."""

from __future__ import annotations

import pytest

from envkit.errors import RegistryError
from envkit.registry import manifests
from envkit.registry.auth import parse_challenge
from envkit.registry.client import RegistryClient
from envkit.registry.credentials import Credentials
from tests.unit.registry.test_fakes import FakeNet, FakeRegistry, serve_image

SECRET = "s3cret-Pa55"


def client(reg: FakeRegistry, creds: Credentials | None = None, retries: int = 4) -> RegistryClient:
    return RegistryClient(
        reg.host,
        transport=FakeNet(reg),
        credentials=creds,
        backoff=0.0,
        retries=retries,
    )


def test_parse_bearer_challenge_with_quoted_commas() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull,push",
    }


def test_parse_basic_and_empty_challenges() -> None:
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert parse_challenge("") is None


def test_anonymous_bearer_pull_fetches_a_token_once_per_scope() -> None:
    reg = FakeRegistry(auth="bearer")
    raw, _ = serve_image(reg, "library/busybox", "1", [b"layer"])
    c = client(reg)
    got = manifests.fetch(c, "library/busybox", "1")
    again = manifests.fetch(c, "library/busybox", "1")
    assert got.raw == raw == again.raw
    assert len(reg.tokens) == 1
    assert list(reg.tokens.values()) == ["repository:library/busybox:pull"]


def test_bearer_with_credentials_sends_basic_to_the_realm_only() -> None:
    reg = FakeRegistry(auth="bearer", users={"alice": SECRET}, anonymous_pull=False)
    serve_image(reg, "team/app", "1", [b"layer"])
    c = client(reg, Credentials("alice", SECRET))
    manifests.fetch(c, "team/app", "1")
    registry_auth = [h.get("Authorization", "") for _, _, h in reg.log]
    assert all(not a.startswith("Basic") for a in registry_auth)
    assert any(a.startswith("Bearer") for a in registry_auth)


def test_bearer_refusing_anonymous_access_names_login() -> None:
    reg = FakeRegistry(auth="bearer", anonymous_pull=False)
    serve_image(reg, "team/app", "1", [b"layer"])
    with pytest.raises(RegistryError) as info:
        manifests.fetch(client(reg), "team/app", "1")
    assert "envkit login registry.test" in str(info.value)


def test_basic_auth_after_a_401() -> None:
    reg = FakeRegistry(auth="basic", users={"bob": SECRET})
    raw, _ = serve_image(reg, "team/app", "1", [b"layer"])
    assert manifests.fetch(client(reg, Credentials("bob", SECRET)), "team/app", "1").raw == raw
    statuses = [h.get("Authorization", "")[:6] for m, _, h in reg.log if m == "GET"]
    assert "Basic " in statuses


def test_refused_credentials_never_appear_in_the_error() -> None:
    reg = FakeRegistry(auth="basic", users={"bob": "other"})
    serve_image(reg, "team/app", "1", [b"layer"])
    with pytest.raises(RegistryError) as info:
        manifests.fetch(client(reg, Credentials("bob", SECRET)), "team/app", "1")
    text = str(info.value)
    assert "unauthorized" in text and "registry.test/team/app" in text
    assert SECRET not in text and SECRET not in repr(Credentials("bob", SECRET))


def test_5xx_is_retried_then_succeeds() -> None:
    reg = FakeRegistry(fail={"GET": 2})
    raw, _ = serve_image(reg, "a/b", "1", [b"layer"])
    assert manifests.fetch(client(reg), "a/b", "1").raw == raw
    assert len(reg.requests_of("GET")) == 2 + 2  # the ping: two 503s and a 200; the manifest


def test_retries_are_bounded() -> None:
    reg = FakeRegistry(fail={"GET": 100})
    serve_image(reg, "a/b", "1", [b"layer"])
    with pytest.raises(RegistryError) as info:
        manifests.fetch(client(reg, retries=3), "a/b", "1")
    assert "registry.test: HTTP 503" in str(info.value)
    assert len(reg.requests_of("GET")) == 3  # the ping's three attempts, then it gave up


def test_unreachable_registry_is_a_registry_error() -> None:
    reg = FakeRegistry()
    c = RegistryClient("nowhere.test", transport=FakeNet(reg), credentials=None, backoff=0.0)
    with pytest.raises(RegistryError) as info:
        manifests.fetch(c, "a/b", "1")
    assert "nowhere.test" in str(info.value) and "cannot connect" in str(info.value)


@pytest.mark.parametrize(
    ("auth", "creds"),
    [
        ("bearer", None),
        ("bearer", Credentials("alice", SECRET)),
        ("basic", Credentials("alice", SECRET)),
    ],
)
def test_the_ping_challenge_is_answered_before_the_first_request(
    auth: str, creds: Credentials | None
) -> None:
    reg = FakeRegistry(auth=auth, users={"alice": SECRET})
    serve_image(reg, "team/app", "1", [b"layer"])
    manifests.fetch(client(reg, creds), "team/app", "1")
    registry_requests = [(m, path) for m, path, _ in reg.log]
    # the ping, then the manifest once: no unauthenticated attempt answered with 401
    assert registry_requests == [("GET", "/v2/"), ("GET", "/v2/team/app/manifests/1")]
