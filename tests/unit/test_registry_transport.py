"""The registry's HTTP transport against a real HTTP/1.1 server on 127.0.0.1: keep-alive,
redirects, stale connections, bodies cut short, TLS and connection errors, proxies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from envkit.registry.transport import (
    BodyError,
    HTTPTransport,
    RequestsTransport,
    TLSError,
    TransportError,
    default_transport,
    proxied,
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        srv = self.server
        srv.peers.add(self.client_address)
        srv.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.path.startswith("/redirect-to/"):
            self.send_response(307)
            self.send_header("Location", "http://" + self.path.removeprefix("/redirect-to/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * (200_000 if self.path == "/big" else 5)
        if self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten b")
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if self.path == "/then-hang-up":
            # Looks reusable to the client (no Connection: close), as an idle
            # keep-alive connection the server drops later does.
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.peers: set[tuple[str, int]] = set()
        self.seen: list[tuple[str, str]] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def transport() -> Iterator[HTTPTransport]:
    t = HTTPTransport()
    yield t
    t.close()


def test_requests_share_one_keep_alive_connection(
    server: _Server, transport: HTTPTransport
) -> None:
    transport.send("HEAD", server.base + "/a", {}).close()
    for _ in range(3):
        assert transport.send("GET", server.base + "/a", {}).read() == b"xxxxx"
    transport.send("HEAD", server.base + "/a", {}).close()
    assert len(server.peers) == 1


def test_an_unread_small_answer_is_drained_and_a_big_one_drops_its_connection(
    server: _Server, transport: HTTPTransport
) -> None:
    transport.send("GET", server.base + "/small", {}).close()
    transport.send("GET", server.base + "/a", {}).read()
    assert len(server.peers) == 1
    transport.send("GET", server.base + "/big", {}).close()
    transport.send("GET", server.base + "/a", {}).read()
    assert len(server.peers) == 2


def test_a_connection_the_server_dropped_while_idle_is_replaced(
    server: _Server, transport: HTTPTransport
) -> None:
    transport.send("GET", server.base + "/then-hang-up", {}).read()
    assert transport.send("GET", server.base + "/a", {}).read() == b"xxxxx"
    assert [path for path, _ in server.seen] == ["/then-hang-up", "/a"]


def test_redirects_keep_credentials_only_on_the_same_host(
    server: _Server, transport: HTTPTransport
) -> None:
    port = server.server_address[1]
    auth = {"Authorization": "Bearer secret"}
    same = transport.send("GET", f"{server.base}/redirect-to/127.0.0.1:{port}/same", auth)
    other = transport.send("GET", f"{server.base}/redirect-to/localhost:{port}/other", auth)
    assert same.status_code == other.status_code == 200
    same.read(), other.read()
    seen = dict(server.seen)
    assert seen["/same"] == "Bearer secret"
    assert seen["/other"] == ""


def test_a_body_cut_short_is_a_body_error(server: _Server, transport: HTTPTransport) -> None:
    resp = transport.send("GET", server.base + "/cut", {})
    with pytest.raises(BodyError):
        b"".join(resp.iter_content(4))
    assert transport.send("GET", server.base + "/a", {}).read() == b"xxxxx"
    assert len(server.peers) == 2  # the broken connection was not reused


def test_tls_to_a_plain_http_server_is_a_tls_error(
    server: _Server, transport: HTTPTransport
) -> None:
    with pytest.raises(TLSError):
        transport.send("GET", f"https://127.0.0.1:{server.server_address[1]}/a", {})


def test_a_refused_connection_is_a_transport_error(transport: HTTPTransport) -> None:
    srv = _Server()
    port = srv.server_address[1]
    srv.server_close()  # the port is free again: nothing listens
    with pytest.raises(TransportError) as caught:
        transport.send("GET", f"http://127.0.0.1:{port}/a", {})
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_proxies_from_the_environment_select_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    assert not proxied("https://registry.example:5000")
    assert isinstance(default_transport("https://registry.example:5000"), HTTPTransport)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert proxied("https://registry.example:5000")
    assert not proxied("http://registry.example:5000")  # only https is proxied
    transport = default_transport("http://registry.example:5000", "https://registry.example:5000")
    assert isinstance(transport, RequestsTransport)
    transport.close()
    monkeypatch.setenv("no_proxy", "registry.example")
    assert not proxied("https://registry.example:5000")


def test_a_transport_dropped_without_close_closes_its_connections(server: _Server) -> None:
    transport = HTTPTransport()
    transport.send("GET", server.base + "/a", {}).read()
    (conn,) = next(iter(transport._idle.values()))
    assert conn.sock is not None
    del transport
    assert conn.sock is None  # closed, not left to a ResourceWarning
