"""HTTP/1.1 for the registry protocol: keep-alive connections, redirects, TLS.

:class:`HTTPTransport` keeps idle connections per (scheme, host, TLS options) so the
requests of one pull or push share a handful of TCP (and TLS) connections; it follows
redirects (registries send blob downloads to a storage backend), dropping the
``Authorization`` header when the host changes. TLS verifies against the system CAs, a
CA bundle given per registry, or not at all for registries marked insecure, and sends a
client certificate when one is configured; :mod:`ssl` is imported only for https.

HTTP itself is :mod:`envkit.registry.http1`, not :mod:`http.client` (~30 ms to import,
more than a whole warm pull takes over the network), and requests (60-200 ms) is only
loaded where a flow needs what the small client lacks: an HTTP(S) proxy from the
environment (:func:`default_transport` picks :class:`RequestsTransport` then).

Errors are :class:`TransportError` subclasses, whatever the transport, so the client's
retry and message logic has one vocabulary.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import urljoin, urlsplit

from envkit.registry import http1
from envkit.values import Value

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any, Literal, Protocol

    #: A request body: bytes, or a callable opening a fresh file-like (with ``len()``)
    #: per attempt, so a body can be sent again after a redirect or a stale connection.
    Body = bytes | Callable[[], Any] | None
    #: How a response body ended (see :class:`Response`).
    End = Literal["read", "unread", "broken"]
else:
    Protocol = object

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: A response left unread up to this size is drained so its connection can be reused.
_DRAIN_LIMIT = 1 << 16
_IDLE_PER_HOST = 8
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TransportError(Exception):
    """A request failed below HTTP: no connection, TLS, or a body cut short."""


class NameResolutionError(TransportError):
    """The host name does not resolve (not worth retrying)."""


class TLSError(TransportError):
    """The TLS handshake failed (certificate, or the server does not speak TLS)."""


class BodyError(TransportError):
    """The connection broke while a response body was being read."""


class TLSOptions(Value):
    """How to check a server: ``verify`` is True (system CAs), a CA bundle path, or
    False (no check); ``client_cert`` a (certificate, key) pair of paths."""

    __slots__ = ()
    FIELDS = ("verify", "client_cert")
    verify: bool | str
    client_cert: tuple[str, str] | None

    def __new__(
        cls, verify: bool | str = True, client_cert: tuple[str, str] | None = None
    ) -> TLSOptions:
        return tuple.__new__(cls, (verify, client_cert))


#: The system's CAs, no client certificate.
DEFAULT_TLS = TLSOptions()


class Headers:
    """Response headers, looked up case-insensitively (the last value of a repeated one)."""

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]]) -> None:
        pairs = items if isinstance(items, list) else items.items()
        self._values = {name.lower(): value for name, value in pairs}

    def get(self, name: str, default: str = "") -> str:
        """The value of header ``name``, or ``default``."""
        return self._values.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values


class Response:
    """One answer: status, headers and a body read once (all of it, or in chunks).

    ``chunks(n)`` yields the body in pieces of at most ``n`` bytes; ``release`` is
    called once with how the body ended (the connection's fate): ``"read"`` to its
    end, ``"unread"`` (closed early), or ``"broken"`` (a read failed).
    """

    def __init__(
        self,
        status_code: int,
        headers: Headers,
        chunks: Callable[[int], Iterator[bytes]],
        release: Callable[[End], None] = lambda end: None,
        url: str = "",
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.url = url
        self._chunks = chunks
        self._release: Callable[[End], None] | None = release
        self._content: bytes | None = None

    def iter_content(self, size: int) -> Iterator[bytes]:
        """The body in chunks; a broken connection raises :class:`BodyError`."""
        end: End = "unread"
        try:
            for chunk in self._chunks(size):
                if chunk:
                    yield chunk
            end = "read"
        except (OSError, http1.ProtocolError) as exc:
            end = "broken"
            raise BodyError(f"connection broke while reading the body: {exc!r}") from exc
        finally:
            self._finish(end)

    def read(self) -> bytes:
        """The whole body (read on first use, then kept)."""
        if self._content is None:
            self._content = b"".join(self.iter_content(1 << 16))
        return self._content

    @property
    def content(self) -> bytes:
        """The whole body (see :meth:`read`)."""
        return self.read()

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not)."""
        import json

        return json.loads(self.content)

    def close(self) -> None:
        """Give the connection back (or drop it, when the body was not read)."""
        self._finish("unread")

    def _finish(self, end: End) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(end)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport(Protocol):
    """Sends one HTTP request (tests plug an in-process registry in here)."""

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        *,
        tls: TLSOptions = DEFAULT_TLS,
    ) -> Response:
        """Send ``method url`` and return the answer, its body not yet read."""
        ...

    def close(self) -> None:
        """Close the connections kept open."""
        ...


if TYPE_CHECKING:
    _Key = tuple[str, str, TLSOptions]


class HTTPTransport:
    """Keep-alive HTTP/1.1 (:mod:`envkit.registry.http1`); thread-safe (one connection
    per request in flight, idle ones kept per host)."""

    def __init__(self, *, user_agent: str = "envkit") -> None:
        self.user_agent = user_agent
        self._idle: dict[_Key, list[http1.Connection]] = {}
        self._contexts: dict[TLSOptions, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        *,
        tls: TLSOptions = DEFAULT_TLS,
    ) -> Response:
        """Send the request, following redirects; see :class:`Transport`."""
        sent = dict(headers)
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._send_one(method, url, sent, body, tls)
            location = resp.headers.get("Location")
            if resp.status_code not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
                return resp
            resp.close()
            target = urljoin(url, location)
            if urlsplit(target).netloc != urlsplit(url).netloc:
                # Credentials are for the registry, never for where it sends us.
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            url = target
        raise TransportError(f"more than {MAX_REDIRECTS} redirects from {url}")

    def _send_one(
        self, method: str, url: str, headers: dict[str, str], body: Body, tls: TLSOptions
    ) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"cannot send to {url!r}")
        key: _Key = (parts.scheme, parts.netloc, tls if parts.scheme == "https" else DEFAULT_TLS)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        sent = {"User-Agent": self.user_agent, **headers}
        for attempt in (0, 1):
            conn: http1.Connection | None = None
            reused = False
            data = body() if callable(body) else body
            try:
                conn, reused = self._connection(key)
                length = None if data is None or isinstance(data, bytes) else len(data)
                answer = conn.request(method, target, sent, data, length)
            except (http1.RemoteClosed, BrokenPipeError, ConnectionResetError) as exc:
                if conn is not None:
                    conn.close()
                if reused and attempt == 0:
                    continue  # the server dropped an idle keep-alive connection: redo
                raise TransportError(f"{parts.netloc}: connection closed: {exc!r}") from exc
            except TLSError:
                raise
            except http1.ResolveError as exc:
                raise NameResolutionError(f"{parts.hostname}: {exc.strerror}") from exc
            except (OSError, http1.ProtocolError) as exc:
                if conn is not None:
                    conn.close()
                raise TransportError(f"{parts.netloc}: {exc!r}") from exc
            finally:
                if data is not None and hasattr(data, "close"):
                    data.close()
            return self._wrap(key, conn, answer, url)
        raise AssertionError("unreachable")

    def _wrap(self, key: _Key, conn: http1.Connection, answer: http1.Answer, url: str) -> Response:
        body = answer.body

        def chunks(size: int) -> Iterator[bytes]:
            while chunk := body.read(size):
                yield chunk

        def release(end: End) -> None:
            # "unread": closed before its end; a small rest is drained to keep the
            # connection (an answer without a body, HEAD or 204, is already complete).
            try:
                reusable = (
                    end != "broken"
                    and not answer.will_close
                    and (body.done or body.drain(_DRAIN_LIMIT))
                )
            except (OSError, http1.ProtocolError):
                reusable = False
            if reusable:
                self._put_idle(key, conn)
            else:
                conn.close()

        return Response(answer.status, Headers(answer.headers), chunks, release, url)

    def _connection(self, key: _Key) -> tuple[http1.Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        scheme, netloc, tls = key
        parts = urlsplit(f"{scheme}://{netloc}")
        host, port = parts.hostname or "", parts.port or _DEFAULT_PORTS[scheme]
        sock = http1.connect(host, port, CONNECT_TIMEOUT)
        if scheme == "https":
            sock = self._tls_wrap(sock, host, tls)
        sock.settimeout(READ_TIMEOUT)
        # Host names the port only when it is not the scheme's default, as browsers do.
        if parts.port in (None, _DEFAULT_PORTS[scheme]):
            host_header = f"[{host}]" if ":" in host else host  # IPv6 in brackets
        else:
            host_header = netloc.rpartition("@")[2]
        return http1.Connection(sock, host_header), False

    def _tls_wrap(self, raw: Any, host: str, tls: TLSOptions) -> Any:
        """The TLS socket over ``raw`` after the handshake (:class:`TLSError` if it fails)."""
        import socket
        import ssl

        context = self._context(tls)
        sock = socket.socket(fileno=raw.detach())
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            return context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLError as exc:
            sock.close()
            raise TLSError(str(exc)) from exc
        except OSError:
            sock.close()
            raise

    def _put_idle(self, key: _Key, conn: http1.Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _IDLE_PER_HOST:
                idle.append(conn)
                return
        conn.close()

    def _context(self, tls: TLSOptions) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(tls)
            if context is None:
                context = self._contexts[tls] = make_context(tls)
            return context

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def __del__(self) -> None:
        # A client dropped without close() (code written when clients held no
        # connections) must not leave its sockets to the garbage collector.
        if hasattr(self, "_idle"):
            self.close()


def make_context(tls: TLSOptions) -> ssl.SSLContext:
    """The TLS context for ``tls``: system CAs, a CA bundle, or no verification."""
    import ssl

    if tls.verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(tls.verify, str):
        context = ssl.create_default_context(cafile=tls.verify)
    else:
        context = ssl.create_default_context()
    if tls.client_cert is not None:
        context.load_cert_chain(*tls.client_cert)
    return context


class RequestsTransport:
    """The same interface over requests, for what http.client lacks: proxies from the
    environment (``HTTPS_PROXY``, ``NO_PROXY``...), which requests applies itself."""

    def __init__(self, *, user_agent: str = "envkit") -> None:
        import requests

        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        *,
        tls: TLSOptions = DEFAULT_TLS,
    ) -> Response:
        """See :class:`Transport`."""
        import requests

        data = body() if callable(body) else body
        try:
            resp = self.session.request(
                method,
                url,
                headers=dict(headers),
                data=data,
                stream=True,
                verify=tls.verify,
                cert=tls.client_cert,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=True,
            )
        except requests.exceptions.SSLError as exc:
            raise TLSError(str(exc)) from exc
        except requests.RequestException as exc:
            if "NameResolutionError" in repr(exc) or "Name or service not known" in str(exc):
                raise NameResolutionError(str(exc)) from exc
            raise TransportError(repr(exc)) from exc

        def chunks(size: int) -> Iterator[bytes]:
            try:
                yield from resp.iter_content(size)
            except requests.RequestException as exc:
                raise BodyError(repr(exc)) from exc

        return Response(
            resp.status_code,
            Headers(list(resp.headers.items())),
            chunks,
            lambda complete: resp.close(),
            resp.url,
        )

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def proxied(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy (``*_proxy``/``NO_PROXY``)."""
    if not any(key.lower().endswith("_proxy") for key in os.environ):
        return False
    from urllib.request import (  # type: ignore[attr-defined]
        getproxies_environment,
        proxy_bypass_environment,
    )

    parts = urlsplit(url)
    proxies = getproxies_environment()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not proxy_bypass_environment(parts.netloc, proxies)


def default_transport(*urls: str) -> Transport:
    """The transport for servers at ``urls``: requests when a proxy applies to one of
    them, else :class:`HTTPTransport`."""
    if any(proxied(url) for url in urls):
        return RequestsTransport()
    return HTTPTransport()
