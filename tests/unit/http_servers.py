"""Small HTTP servers on 127.0.0.1 for the registry transport's tests.

:class:`Server` is a scripted HTTP/1.1 server (keep-alive, optionally TLS, optionally
plain HTTP and TLS on the same port, optionally asking for a client certificate) that
records who asked for what; a test gives it a ``route`` function. :class:`Proxy` is a
forward proxy: absolute-URI requests for plain HTTP and ``CONNECT`` tunnels for HTTPS,
recording what went through it. Certificates come from the ``openssl`` CLI
(:mod:`tests.integration.registry_server`).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.integration.registry_server import _run, make_ca_and_cert

#: (status, headers, body) a route answers; a body of ``None`` with a "cut" header
#: sends half of "Content-Length" bytes, then hangs up.
Answer = tuple[int, dict[str, str], bytes]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        srv = self.server
        srv.peers.add(self.client_address)
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        srv.seen.append((self.command, scheme, self.path, dict(self.headers.items()), body))
        status, headers, payload = srv.route(self)
        cut = headers.pop("X-Cut-After", None)
        self.send_response(status)
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(payload))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut is not None:
            self.wfile.write(payload[: int(cut)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _serve


def _ok(handler: Handler) -> Answer:
    return 200, {}, b"xxxxx"


class Server(ThreadingHTTPServer):
    """A scripted server; ``tls`` is a server certificate (cert, key), ``both`` serves
    plain HTTP and TLS on one port (told apart by the first byte), ``client_ca`` asks
    for a client certificate signed by that CA."""

    daemon_threads = True

    def __init__(
        self,
        route: Callable[[Handler], Answer] = _ok,
        *,
        tls: tuple[Path, Path] | None = None,
        both: bool = False,
        client_ca: Path | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.route = route
        self.peers: set[tuple[str, int]] = set()
        self.seen: list[tuple[str, str, str, dict[str, str], bytes]] = []
        self.handshakes = 0
        self.context: ssl.SSLContext | None = None
        self.both = both
        if tls is not None:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(str(tls[0]), str(tls[1]))
            if client_ca is not None:
                self.context.verify_mode = ssl.CERT_REQUIRED
                self.context.load_verify_locations(str(client_ca))
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, scheme: str = "") -> str:
        scheme = scheme or ("https" if self.context and not self.both else "http")
        return f"{scheme}://127.0.0.1:{self.port}"

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        sock, addr = self.socket.accept()
        if self.context is None:
            return sock, addr
        if self.both:
            sock.settimeout(5)
            first = sock.recv(1, socket.MSG_PEEK)
            if first != b"\x16":  # not a TLS handshake: plain HTTP
                return sock, addr
        self.handshakes += 1
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(5)
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            super().finish_request(request, client_address)

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Proxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_CONNECT(self) -> None:
        self.server.seen.append(("CONNECT", self.path))
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=5)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        sockets = [self.connection, upstream]
        with contextlib.suppress(OSError):
            while True:
                ready, _, _ = select.select(sockets, [], [], 5)
                if not ready:
                    break
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        upstream.close()
                        self.close_connection = True
                        return
                    (upstream if s is self.connection else self.connection).sendall(data)
        upstream.close()
        self.close_connection = True

    def _forward(self) -> None:
        self.server.seen.append((self.command, self.path))
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=5)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [f"{self.command} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        head += [
            f"{k}: {v}"
            for k, v in self.headers.items()
            if k.lower() not in ("host", "connection", "proxy-connection", "keep-alive")
        ]
        upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        answer = b""
        while chunk := upstream.recv(65536):
            answer += chunk
        upstream.close()
        self.wfile.write(answer)
        self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = _forward


class Proxy(ThreadingHTTPServer):
    """A forward proxy on 127.0.0.1 that records ``(method, target)`` of what it relays."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class Certs:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate it signed."""

    def __init__(self, directory: Path) -> None:
        self.ca, self.server_cert, self.server_key = make_ca_and_cert(directory)
        self.client_cert, self.client_key = make_client_cert(directory, self.ca)


def make_client_cert(directory: Path, ca_crt: Path, name: str = "client") -> tuple[Path, Path]:
    """A client certificate (and key) signed by the CA beside ``ca_crt``."""
    key, csr, crt = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.cert"
    _run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(csr), "-subj", f"/CN={name}"]
    )  # fmt: skip
    ext = directory / f"{name}-ext.cnf"
    ext.write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    _run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt),
         "-CAkey", str(ca_crt.with_suffix(".key")), "-CAcreateserial", "-out", str(crt),
         "-days", "2", "-extfile", str(ext)]
    )  # fmt: skip
    return crt, key
