"""HTTP for the registry protocol, on requests: keep-alive, redirects, proxies, TLS.

:class:`HTTPTransport` sends every request of one client through one
:class:`requests.Session`, so the requests of a pull or push (and the threads that move
blobs in parallel) share a handful of kept-alive TCP and TLS connections. What requests
does, envkit does not redo: proxies from the environment (``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) decided again for every hop of a redirect,
``Authorization`` dropped when a redirect changes the host or leaves https, TLS against
the system CAs, a per-registry CA bundle or none (insecure registries), and client
certificates. On top of it:

- GET and HEAD follow redirects (registries send blob downloads to a storage host);
  other methods do not (an upload is not sent anywhere the registry did not name in a
  ``Location`` the client reads itself);
- ``Accept-Encoding: identity``: a blob's bytes are the bytes hashed, so a ``Range``
  request can resume a cut download (:mod:`envkit.registry.blobs`);
- a small answer closed unread is drained so its connection is kept; bodies move in
  1 MiB blocks both ways (urllib3 sends a file body in 16 KiB blocks by default);
- ``~/.netrc`` is not read: registry credentials come from ``envkit login`` and docker's
  config, and a netrc entry must not replace a registry's token.

requests is imported on the first request (60-100 ms): ``envkit run`` of a stored image
and ``up`` with every image present never load it. Errors are :class:`TransportError`
subclasses, so the client's retries and messages have one vocabulary.
"""

from __future__ import annotations

import threading

from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any, Literal, Protocol

    import requests

    #: A request body: bytes, or a callable opening a fresh file-like (with ``len()``)
    #: per attempt.
    Body = bytes | Callable[[], Any] | None
    #: How a response body ended (see :class:`Response`).
    End = Literal["read", "unread", "broken"]
    #: What kind of TLS failure (see :class:`TLSError`).
    TLSKind = Literal["verify", "not-tls", "client-cert", "closed", "files", "other"]
else:
    Protocol = object

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
MAX_REDIRECTS = 5
#: Bytes moved at once: response reads and file-like request bodies.
BLOCK = 1 << 20
#: A response left unread up to this size is drained so its connection can be reused.
_DRAIN_LIMIT = 1 << 16
#: Connections kept per host (blob transfers run a few at a time).
POOL_SIZE = 8


class TransportError(Exception):
    """A request failed below HTTP: no connection, TLS, or a body cut short."""


class NameResolutionError(TransportError):
    """The host name does not resolve (not worth retrying)."""


class RequestError(TransportError):
    """The request cannot be made as it stands: an invalid URL or redirect, too many
    redirects, a bad header (not worth retrying)."""


class TLSError(TransportError):
    """TLS failed. ``kind``: ``"verify"`` (the server's certificate is not trusted),
    ``"not-tls"`` (the server does not speak TLS), ``"client-cert"`` (the server wants a
    client certificate, or refused the one sent), ``"closed"`` (the server hung up
    during the handshake: what a server refusing a client certificate often looks like
    under TLS 1.3), ``"files"`` (a CA or client certificate file cannot be read) or
    ``"other"``."""

    def __init__(self, message: str, kind: TLSKind = "other") -> None:
        super().__init__(message)
        self.kind: TLSKind = kind


class BodyError(TransportError):
    """The connection broke while a response body was being read."""


class TLSOptions(Value):
    """How to check a server: ``verify`` is True (system CAs), a CA bundle path, or
    False (no check); ``client_cert`` a (certificate, key) pair of paths."""

    verify: bool | str = True
    client_cert: tuple[str, str] | None = None


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
    called once with how the body ended: ``"read"`` to its end, ``"unread"`` (closed
    early), or ``"broken"`` (a read failed). ``url`` is where the answer came from
    (after redirects).
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
        except BodyError:
            end = "broken"
            raise
        except OSError as exc:
            end = "broken"
            raise BodyError(f"connection broke while reading the body: {exc!r}") from exc
        finally:
            self._finish(end)

    def read(self) -> bytes:
        """The whole body (read on first use, then kept)."""
        if self._content is None:
            self._content = b"".join(self.iter_content(BLOCK))
        return self._content

    @property
    def content(self) -> bytes:
        """The whole body (see :meth:`read`)."""
        return self.read()

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` when it is not)."""
        import json  # lazy: only for JSON bodies

        return json.loads(self.content)

    def close(self) -> None:
        """Give the connection back (or drop it, when much of the body is unread)."""
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


class HTTPTransport:
    """HTTP(S) through one :class:`requests.Session` (made on the first request);
    thread-safe. See the module's docstring for what it adds to requests."""

    def __init__(self, *, user_agent: str = "envkit") -> None:
        self.user_agent = user_agent
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """The session (requests is imported here, on first use)."""
        with self._lock:
            if self._session is None:
                self._session = _new_session(self.user_agent)
            return self._session

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        *,
        tls: TLSOptions = DEFAULT_TLS,
    ) -> Response:
        """Send the request (GET and HEAD follow redirects); see :class:`Transport`."""
        session = self.session
        import requests  # lazy for start-up: requests on the first request (see the module)

        data = body() if callable(body) else body
        sent = {"Accept-Encoding": "identity", **headers}
        try:
            resp = session.request(
                method,
                url,
                headers=sent,
                data=data,
                stream=True,
                verify=tls.verify,
                cert=tls.client_cert,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=method in ("GET", "HEAD"),
            )
        except requests.RequestException as exc:
            raise _translate(exc, url) from _root(exc)
        except (OSError, ValueError) as exc:
            # requests checks CA and client certificate paths itself (OSError), and
            # http.client refuses some header values (ValueError).
            raise _translate(exc, url) from exc
        finally:
            if data is not None and hasattr(data, "close"):
                data.close()
        return _wrap(resp)

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def __del__(self) -> None:
        # A client dropped without close() must not leave its sockets to the collector.
        if getattr(self, "_session", None) is not None:
            self.close()


def _import_requests() -> None:
    """Import requests (the first request of a process does) with the cyclic garbage
    collector paused: its import allocates tens of thousands of objects that live as
    long as the process, and the collections they trigger find nothing to free (~7 of
    ~70 ms of CPU here, docs/dev/registry.md)."""
    import gc  # lazy: only for the import of requests (see above)

    paused = gc.isenabled()
    gc.disable()
    try:
        import requests  # noqa: F401
    finally:
        if paused:
            gc.enable()


def _new_session(user_agent: str) -> requests.Session:
    """A session with large I/O blocks and no ``.netrc`` credentials."""
    _import_requests()
    # lazy for start-up: requests on the first request (see the module)
    import requests
    from requests.adapters import HTTPAdapter

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["blocksize"] = BLOCK  # urllib3 sends a file body in blocks of this
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            kwargs["blocksize"] = BLOCK
            return super().proxy_manager_for(proxy, **kwargs)

        def build_connection_pool_key_attributes(
            self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
        ) -> Any:
            # requests' documented hook for a pool's TLS settings: hand the pool one
            # context with the CAs loaded, instead of a CA path urllib3 loads again for
            # every connection (the system bundle: ~30 ms of CPU each).
            host, kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            pool: dict[str, Any] = kwargs  # type: ignore[assignment]
            if host.get("scheme") == "https" and verify is not False:
                context = _tls_context(verify, cert)
                if context is not None:
                    pool["ssl_context"] = context
                    pool.pop("ca_certs", None)
                    pool.pop("ca_cert_dir", None)
            return host, pool

        def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
            super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
            if id(getattr(conn, "conn_kw", {}).get("ssl_context")) in _CONTEXT_IDS:
                conn.ca_certs = conn.ca_cert_dir = None  # the context holds them

    class _Session(requests.Session):
        def rebuild_auth(
            self, prepared_request: requests.PreparedRequest, response: requests.Response
        ) -> None:
            # requests' own, without re-adding ~/.netrc credentials after a redirect.
            headers = prepared_request.headers
            old = response.request.url or ""
            new = prepared_request.url or ""
            if "Authorization" in headers and self.should_strip_auth(old, new):  # type: ignore[no-untyped-call]
                del headers["Authorization"]

    session = _Session()
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = user_agent
    # A truthy no-op auth: requests then does not look in ~/.netrc for the first hop.
    session.auth = _no_auth
    for prefix in ("http://", "https://"):
        session.mount(prefix, _Adapter(pool_connections=4, pool_maxsize=POOL_SIZE))
    return session


#: TLS contexts with their CAs loaded, by (verify, client certificate, CA file's stat):
#: one load of a CA bundle per process rather than one per connection. A client
#: certificate gets a context of its own, so it is never offered to a server it was not
#: configured for.
_CONTEXTS: dict[tuple[bool | str, Any, tuple[int, int, int]], Any] = {}
_CONTEXT_IDS: set[int] = set()
_CONTEXT_LOCK = threading.Lock()


def _tls_context(verify: bool | str, cert: Any) -> Any:
    """The shared context that verifies against ``verify`` (True: requests' CA bundle),
    or ``None`` when its CAs cannot be loaded: requests then reports that as it does."""
    # lazy for start-up: requests and ssl only for TLS (see the module)
    import os
    import ssl

    from requests.utils import DEFAULT_CA_BUNDLE_PATH
    from urllib3.util.ssl_ import create_urllib3_context

    where = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
    try:
        st = os.stat(where)
    except OSError:
        return None
    # A CA file replaced since (a long-lived process, certs.d edited) is loaded again.
    changed = (st.st_ino, st.st_size, st.st_mtime_ns)
    key = (verify, cert if cert is None or isinstance(cert, str) else tuple(cert), changed)
    with _CONTEXT_LOCK:
        found = _CONTEXTS.get(key)
        if found is None:
            try:
                found = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
                if os.path.isdir(where):
                    found.load_verify_locations(capath=where)
                else:
                    found.load_verify_locations(cafile=where)
            except (OSError, ValueError):  # ssl.SSLError is an OSError
                return None
            _CONTEXTS[key] = found
            _CONTEXT_IDS.add(id(found))
        return found


def _no_auth(request: Any) -> Any:
    return request


def _wrap(resp: requests.Response) -> Response:
    import requests  # lazy for start-up: loaded by the request that made resp

    def chunks(size: int) -> Iterator[bytes]:
        try:
            yield from resp.iter_content(size)
        except requests.RequestException as exc:
            raise BodyError(f"connection broke while reading the body: {exc}") from _root(exc)

    def release(end: End) -> None:
        if end == "unread":
            _drain(resp)
        resp.close()

    url = resp.url or ""
    return Response(resp.status_code, Headers(list(resp.headers.items())), chunks, release, url)


def _drain(resp: requests.Response) -> None:
    """Read what is left of a small body, so its connection goes back to the pool (a
    large rest is not worth it: the connection is closed instead)."""
    raw = resp.raw
    left = getattr(raw, "length_remaining", None)
    if left is None or left > _DRAIN_LIMIT:
        return
    try:
        while raw.read(_DRAIN_LIMIT):
            pass
    except Exception:  # a broken rest just costs the connection
        return


def _root(exc: BaseException) -> BaseException:
    """The innermost cause (the OS error under requests' and urllib3's wrappers)."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        reason = getattr(current, "reason", None)
        nxt = reason if isinstance(reason, BaseException) else None
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        nxt = nxt or current.__cause__ or current.__context__
        if nxt is None:
            break
        current = nxt
    return current


#: TLS alerts a server sends when it wants a client certificate or refuses the one sent.
_CLIENT_CERT_MARKS = (
    "CERTIFICATE_REQUIRED",
    "certificate required",
    "BAD_CERTIFICATE",
    "bad certificate",
    "UNKNOWN_CA",
    "unknown ca",
    "CERTIFICATE_UNKNOWN",
    "certificate unknown",
    "HANDSHAKE_FAILURE",
)


#: OpenSSL's and requests' words for a CA or client certificate file it cannot use.
_FILE_MARKS = (
    "PEM lib",
    "NO_CERTIFICATE_OR_CRL_FOUND",
    "KEY_VALUES_MISMATCH",
    "certificate file",
    "CA certificate bundle",
)


def tls_kind(text: str) -> TLSKind:
    """Which TLS failure ``text`` (an OpenSSL or requests message) describes."""
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "verify"
    if (
        "WRONG_VERSION_NUMBER" in text
        or "wrong version number" in text
        or ("record layer failure" in text)
    ):
        return "not-tls"
    if any(mark in text for mark in _CLIENT_CERT_MARKS):
        return "client-cert"
    if "EOF occurred in violation of protocol" in text or "UNEXPECTED_EOF" in text:
        return "closed"
    if any(mark in text for mark in _FILE_MARKS):
        return "files"
    return "other"


def _translate(exc: BaseException, url: str) -> TransportError:
    """The :class:`TransportError` for what requests (or what it wraps) raised."""
    # lazy for start-up: only to translate an error (requests is loaded by then)
    import ssl

    import requests

    root = _root(exc)
    text = f"{exc} {root}"
    if isinstance(exc, requests.exceptions.SSLError) or isinstance(root, ssl.SSLError):
        return TLSError(_short(root), tls_kind(text))
    if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
        # requests' own check of the CA bundle and client certificate paths.
        return TLSError(str(exc), "files")
    if isinstance(exc, ValueError) and not isinstance(exc, requests.RequestException):
        return RequestError(f"invalid request to {url}: {exc}")
    if isinstance(exc, requests.TooManyRedirects):
        return RequestError(f"more than {MAX_REDIRECTS} redirects from {url}")
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidHeader,
            requests.exceptions.URLRequired,
        ),
    ):
        return RequestError(f"invalid request or redirect from {url}: {exc}")
    if (
        (isinstance(root, OSError) and type(root).__name__ == "gaierror")
        or "NameResolutionError" in text
        or "Name or service not known" in text
    ):
        return NameResolutionError(_short(root))
    if isinstance(exc, requests.exceptions.ProxyError):
        return TransportError(f"the proxy failed: {_short(root)}")
    return TransportError(_short(root))


def _short(exc: BaseException) -> str:
    """An exception as one line, without urllib3's object reprs."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
