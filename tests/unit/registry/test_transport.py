"""The registry's HTTP transport (requests) against real servers on 127.0.0.1: keep-alive,
redirects (to other hosts, https -> http), credentials on redirects, proxies and
NO_PROXY, bodies cut short, TLS with custom CAs and client certificates, errors."""

from __future__ import annotations

import os
import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envkit.errors import RegistryError
from envkit.registry import transport as transport_module
from envkit.registry.client import RegistryClient
from envkit.registry.endpoints import Endpoint
from envkit.registry.transport import (
    BodyError,
    HTTPTransport,
    TLSError,
    TLSOptions,
    TransportError,
)
from tests.unit.http_servers import Answer, Certs, Handler, Proxy, Server, make_client_cert

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def transport() -> Iterator[HTTPTransport]:
    t = HTTPTransport()
    yield t
    t.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    return Certs(tmp_path_factory.mktemp("certs"))


def _redirecting(target: str) -> Callable[[Handler], Answer]:
    """A route: ``/go`` redirects to ``target``, the rest answers 200."""

    def route(handler: Handler) -> Answer:
        if handler.path == "/go":
            return 307, {"Location": target}, b""
        return 200, {}, b"xxxxx"

    return route


def _paths(server: Server) -> list[str]:
    return [path for _, _, path, _, _ in server.seen]


def _auth_of(server: Server, path: str) -> str:
    return next(h.get("Authorization", "") for _, _, p, h, _ in server.seen if p == path)


# -- keep-alive ---------------------------------------------------------------------------


def test_requests_share_one_keep_alive_connection(transport: HTTPTransport) -> None:
    with Server() as srv:
        transport.send("HEAD", srv.url() + "/a", {}).close()
        for _ in range(3):
            assert transport.send("GET", srv.url() + "/a", {}).read() == b"xxxxx"
        transport.send("HEAD", srv.url() + "/a", {}).close()
        transport.send("GET", srv.url() + "/a", {}).close()  # unread, small: drained
        transport.send("GET", srv.url() + "/a", {}).read()
    assert len(srv.peers) == 1


def test_a_big_unread_answer_drops_its_connection(transport: HTTPTransport) -> None:
    with Server(lambda h: (200, {}, b"x" * 300_000)) as srv:
        transport.send("GET", srv.url() + "/big", {}).close()
        transport.send("GET", srv.url() + "/big", {}).read()
    assert len(srv.peers) == 2


def test_a_connection_the_server_dropped_while_idle_is_replaced(
    transport: HTTPTransport,
) -> None:
    def route(handler: Handler) -> Answer:
        handler.close_connection = handler.path == "/then-hang-up"
        return 200, {}, b"xxxxx"

    with Server(route) as srv:
        transport.send("GET", srv.url() + "/then-hang-up", {}).read()
        # Idle: the server's close reaches the client before it reuses the connection
        # (sent at once, the request can race the FIN, which no client can tell).
        time.sleep(0.3)
        assert transport.send("GET", srv.url() + "/a", {}).read() == b"xxxxx"
    assert _paths(srv) == ["/then-hang-up", "/a"]


# -- redirects and credentials ----------------------------------------------------------


def test_a_redirect_to_another_host_is_followed_without_credentials(
    transport: HTTPTransport,
) -> None:
    auth = {"Authorization": "Bearer secret"}
    with Server() as storage:
        blob = f"http://localhost:{storage.port}/blob"  # another host name
        with Server(_redirecting(blob)) as registry:
            resp = transport.send("GET", registry.url() + "/go", auth)
            assert resp.status_code == 200 and resp.read() == b"xxxxx"
            assert resp.url == blob
    assert _auth_of(registry, "/go") == "Bearer secret"
    assert _auth_of(storage, "/blob") == ""


def test_a_redirect_on_the_same_host_keeps_credentials(transport: HTTPTransport) -> None:
    with Server() as srv:
        srv.route = _redirecting(f"http://127.0.0.1:{srv.port}/same")
        transport.send("GET", srv.url() + "/go", {"Authorization": "Bearer secret"}).read()
    assert _auth_of(srv, "/same") == "Bearer secret"


@needs_openssl
def test_an_https_to_http_redirect_on_the_same_port_drops_credentials(
    transport: HTTPTransport, certs: Certs
) -> None:
    """The hand-written client kept ``Authorization`` here (same host:port, plain HTTP)."""
    tls = TLSOptions(str(certs.ca))
    with Server(tls=(certs.server_cert, certs.server_key), both=True) as srv:
        srv.route = _redirecting(f"http://127.0.0.1:{srv.port}/plain")
        resp = transport.send(
            "GET", srv.url("https") + "/go", {"Authorization": "Bearer secret"}, tls=tls
        )
        assert resp.read() == b"xxxxx"
    assert [(scheme, path) for _, scheme, path, _, _ in srv.seen] == [
        ("https", "/go"),
        ("http", "/plain"),
    ]
    assert _auth_of(srv, "/go") == "Bearer secret"
    assert _auth_of(srv, "/plain") == ""


def test_too_many_redirects_is_one_clear_error_not_retried() -> None:
    with Server() as srv:
        srv.route = _redirecting(f"http://127.0.0.1:{srv.port}/go")
        client = _client(srv.url())
        with pytest.raises(RegistryError, match="redirect") as caught:
            client.request("GET", "/go", repo="a", scope="")
        client.close()
    assert "running" not in str(caught.value.hint or "")
    assert len(_paths(srv)) < 40  # one attempt (of 30 redirects at most), not four


def test_an_invalid_redirect_location_is_one_clear_error() -> None:
    with Server(_redirecting("http://[not-an-address/blob")) as srv:
        client = _client(srv.url())
        with pytest.raises(RegistryError, match=r"127\.0\.0\.1") as caught:
            client.request("GET", "/go", repo="a", scope="")
        client.close()
    assert _paths(srv).count("/go") == 1
    assert "\n" not in str(caught.value)


# -- bodies ------------------------------------------------------------------------------


def test_a_body_cut_short_is_a_body_error(transport: HTTPTransport) -> None:
    def route(handler: Handler) -> Answer:
        if handler.path == "/cut":
            return 200, {"X-Cut-After": "10"}, b"x" * 100
        return 200, {}, b"xxxxx"

    with Server(route) as srv:
        resp = transport.send("GET", srv.url() + "/cut", {})
        with pytest.raises(BodyError):
            b"".join(resp.iter_content(4))
        assert transport.send("GET", srv.url() + "/a", {}).read() == b"xxxxx"
    assert len(srv.peers) == 2  # the broken connection was not reused


def test_a_streamed_upload_sends_its_length_and_every_byte(transport: HTTPTransport) -> None:
    import io

    data = bytes(range(256)) * 20_000  # 5 MB

    class Body(io.BytesIO):
        def __len__(self) -> int:
            return len(data)

    with Server(lambda h: (201, {}, b"")) as srv:
        resp = transport.send("PUT", srv.url() + "/up", {}, lambda: Body(data))
        assert resp.status_code == 201
        resp.close()
    (_, _, _, headers, body) = srv.seen[0]
    assert headers["Content-Length"] == str(len(data)) and body == data


# -- proxies -----------------------------------------------------------------------------


def test_a_proxy_from_the_environment_is_used(
    transport: HTTPTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Proxy() as proxy, Server() as srv:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert transport.send("GET", srv.url() + "/a", {}).read() == b"xxxxx"
    assert proxy.seen == [("GET", srv.url() + "/a")]


def test_no_proxy_bypasses_the_proxy_but_a_redirected_blob_goes_through_it(
    transport: HTTPTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry is in NO_PROXY, its storage host is not: the blob goes through the
    proxy (the hand-written client fetched it directly)."""
    with Proxy() as proxy, Server() as storage:
        target = f"http://localhost:{storage.port}/blob"
        with Server(_redirecting(target)) as registry:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            resp = transport.send("GET", registry.url() + "/go", {"Authorization": "Bearer s"})
            assert resp.read() == b"xxxxx"
    assert _paths(registry) == ["/go"]
    assert proxy.seen == [("GET", target)]
    assert _auth_of(storage, "/blob") == ""


@needs_openssl
def test_https_goes_through_the_proxy_in_a_connect_tunnel(
    transport: HTTPTransport, monkeypatch: pytest.MonkeyPatch, certs: Certs
) -> None:
    with Proxy() as proxy, Server(tls=(certs.server_cert, certs.server_key)) as srv:
        monkeypatch.setenv("https_proxy", proxy.url)
        resp = transport.send("GET", srv.url() + "/a", {}, tls=TLSOptions(str(certs.ca)))
        assert resp.read() == b"xxxxx"
    assert proxy.seen == [("CONNECT", f"127.0.0.1:{srv.port}")]


# -- TLS -----------------------------------------------------------------------------------


@needs_openssl
def test_tls_with_a_custom_ca(transport: HTTPTransport, certs: Certs) -> None:
    with Server(tls=(certs.server_cert, certs.server_key)) as srv:
        resp = transport.send("GET", srv.url() + "/a", {}, tls=TLSOptions(str(certs.ca)))
        assert resp.read() == b"xxxxx"
        with pytest.raises(TLSError) as caught:
            transport.send("GET", srv.url() + "/a", {})  # the system CAs do not know it
        assert caught.value.kind == "verify"


@needs_openssl
def test_a_wrong_ca_is_a_tls_error_with_the_ca_hint(certs: Certs, tmp_path: Path) -> None:
    other = Certs(tmp_path / "other")
    with Server(tls=(certs.server_cert, certs.server_key)) as srv:
        client = _client(srv.url(), verify=str(other.ca))
        with pytest.raises(RegistryError, match=r"TLS.*certificate verify failed") as caught:
            client.request("GET", "/a", repo="a", scope="")
        client.close()
    assert "ca.crt" in str(caught.value.hint)


@needs_openssl
def test_a_ca_bundle_is_loaded_once_not_per_connection(
    transport: HTTPTransport, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """urllib3 loads a CA path again for every connection (the system bundle: ~30 ms of
    CPU each); the transport hands its pools one context with the CAs loaded."""
    ca = tmp_path / "ca.crt"
    shutil.copy(certs.ca, ca)
    loads: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args or kwargs)
        real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    tls = TLSOptions(str(ca))
    with Server(tls=(certs.server_cert, certs.server_key)) as srv:
        open_ = [transport.send("GET", srv.url() + "/a", {}, tls=tls) for _ in range(3)]
        assert [r.read() for r in open_] == [b"xxxxx"] * 3
        assert srv.handshakes == 3 and len(loads) == 1  # three connections, one load
        shutil.copy(certs.ca, tmp_path / "new")
        os.replace(tmp_path / "new", ca)  # a CA file replaced is read again
        transport.send("GET", srv.url() + "/a", {}, tls=tls).read()
        assert len(loads) == 2
    context = transport_module._tls_context(str(ca), None)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_tls_to_a_plain_http_server_is_a_tls_error(transport: HTTPTransport) -> None:
    with Server() as srv, pytest.raises(TLSError) as caught:
        transport.send("GET", srv.url("https") + "/a", {})
    assert caught.value.kind == "not-tls"


@needs_openssl
def test_a_client_certificate_is_sent(transport: HTTPTransport, certs: Certs) -> None:
    tls = TLSOptions(str(certs.ca), (str(certs.client_cert), str(certs.client_key)))
    with Server(tls=(certs.server_cert, certs.server_key), client_ca=certs.ca) as srv:
        assert transport.send("GET", srv.url() + "/a", {}, tls=tls).read() == b"xxxxx"


@needs_openssl
@pytest.mark.parametrize("sent", ["none", "unknown CA"])
def test_a_refused_client_certificate_is_one_tls_error_without_retries(
    certs: Certs, tmp_path: Path, sent: str
) -> None:
    client_cert = None
    if sent == "unknown CA":
        other = Certs(tmp_path / "other")
        client_cert = (str(other.client_cert), str(other.client_key))
    with Server(tls=(certs.server_cert, certs.server_key), client_ca=certs.ca) as srv:
        client = _client(srv.url(), verify=str(certs.ca), client_cert=client_cert)
        with pytest.raises(RegistryError, match="client certificate") as caught:
            client.request("GET", "/a", repo="a", scope="")
        client.close()
        assert srv.handshakes == 1  # not retried
    assert "running" not in str(caught.value.hint)
    assert "client.cert" in str(caught.value.hint)


@needs_openssl
def test_a_missing_client_key_is_one_clear_error(certs: Certs, tmp_path: Path) -> None:
    with Server(tls=(certs.server_cert, certs.server_key), client_ca=certs.ca) as srv:
        missing = str(tmp_path / "nowhere.key")
        client = _client(
            srv.url(), verify=str(certs.ca), client_cert=(str(certs.client_cert), missing)
        )
        with pytest.raises(RegistryError, match=r"nowhere\.key"):
            client.request("GET", "/a", repo="a", scope="")
        client.close()
        assert srv.handshakes == 0


@needs_openssl
@pytest.mark.parametrize("bad", ["ca", "client key"])
def test_unusable_certificate_files_are_one_clear_error(
    certs: Certs, tmp_path: Path, bad: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    verify, pair = str(certs.ca), (str(certs.client_cert), str(certs.client_key))
    if bad == "ca":
        verify = str(garbage)
    else:
        pair = (str(certs.client_cert), str(garbage))
    with Server(tls=(certs.server_cert, certs.server_key), client_ca=certs.ca) as srv:
        client = _client(srv.url(), verify=verify, client_cert=pair)
        with pytest.raises(
            RegistryError, match="cannot use the CA or client certificate"
        ) as caught:
            client.request("GET", "/a", repo="a", scope="")
        client.close()
    assert "certs.d" in str(caught.value.hint)


# -- connection errors --------------------------------------------------------------------


def test_a_refused_connection_is_a_transport_error(transport: HTTPTransport) -> None:
    srv = Server()
    url = srv.url()
    srv.server_close()  # the port is free again: nothing listens
    with pytest.raises(TransportError) as caught:
        transport.send("GET", url + "/a", {})
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_requests_is_imported_on_the_first_request_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom envkit.registry.client import RegistryClient\n"
        "RegistryClient('127.0.0.1:9', credentials=None)\n"
        "print('requests' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _client(
    base: str, *, verify: bool | str = True, client_cert: tuple[str, str] | None = None
) -> RegistryClient:
    host = base.split("://", 1)[1]
    endpoint = Endpoint(host, host, base.startswith("http:"), verify, client_cert)
    client = RegistryClient(endpoint, credentials=None, backoff=0.0)
    client._base = base  # no scheme discovery: talk to this server only
    return client


def test_make_client_cert_signs_with_the_ca(certs: Certs, tmp_path: Path) -> None:
    crt, key = make_client_cert(tmp_path, certs.ca, "again")
    assert crt.read_text().startswith("-----BEGIN CERTIFICATE-----") and key.is_file()
