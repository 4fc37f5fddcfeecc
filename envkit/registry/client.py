"""One registry over HTTP: scheme discovery, auth retries, bounded retries, error messages.

:class:`RegistryClient` sends distribution-spec requests for repositories of one
registry. A 401 is answered through :class:`~envkit.registry.auth.Authenticator` and the
request sent once more; connection errors, 429 and 5xx answers are retried with
exponential backoff a bounded number of times. Failures become
:class:`~envkit.errors.RegistryError` naming the registry, the repository and the fix.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urljoin

from envkit.errors import RegistryError
from envkit.registry.auth import Authenticator, Challenge, parse_challenge
from envkit.registry.credentials import Credentials, lookup
from envkit.registry.endpoints import Endpoint, endpoint
from envkit.registry.transport import (
    HTTPTransport,
    NameResolutionError,
    RequestError,
    Response,
    TLSError,
    TLSOptions,
    Transport,
    TransportError,
)

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from envkit.registry.transport import Body

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_UNSET: Any = object()


class RegistryClient:
    """Requests to one registry, authenticated and retried.

    ``credentials`` defaults to what :func:`envkit.registry.credentials.lookup` finds;
    pass None for anonymous access. ``session`` lets tests mount a fake transport.
    """

    def __init__(
        self,
        registry: str | Endpoint,
        *,
        credentials: Credentials | None = _UNSET,
        transport: Transport | None = None,
        retries: int = 4,
        backoff: float = 0.25,
    ) -> None:
        self.endpoint = registry if isinstance(registry, Endpoint) else endpoint(registry)
        self.name = self.endpoint.name
        self._owns_transport = transport is None
        self.transport = transport or HTTPTransport()
        self.tls = TLSOptions(self.endpoint.verify, self.endpoint.client_cert)
        if credentials is _UNSET:
            credentials = lookup(self.name)
        self.auth = Authenticator(self.name, credentials, self.transport)
        self.retries = max(1, retries)
        self.backoff = backoff
        self._base: str | None = None
        self._base_lock = threading.Lock()
        self._challenge: Challenge | None = None  # what the ping's 401 asked for

    def close(self) -> None:
        """Close the idle connections (of a transport this client made)."""
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``https://host`` or (loopback and insecure registries only) ``http://host``."""
        with self._base_lock:
            if self._base is None:
                self._base = self._discover()
            return self._base

    def _discover(self) -> str:
        """Pick the scheme that answers ``GET /v2/`` like a registry (200 or 401).

        When none does, the HTTPS failure is reported (it names the TLS problem).
        """
        errors: dict[str, RegistryError] = {}
        for base in self.endpoint.urls():
            scheme = base.split(":", 1)[0]
            try:
                resp = self._send_retried("GET", base + "/v2/", {}, None)
            except RegistryError as exc:
                errors[scheme] = exc
                continue
            if resp.status_code in (200, 401):
                if resp.status_code == 401:
                    self._challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                resp.close()
                return base
            errors[scheme] = self._error(resp, "", "ping")
        raise errors.get("https") or next(iter(errors.values()))

    def _send_retried(
        self, method: str, url: str, headers: Mapping[str, str], body: Body
    ) -> Response:
        for attempt in range(self.retries):
            last = attempt == self.retries - 1
            try:
                resp = self.transport.send(method, url, headers, body, tls=self.tls)
            except TLSError as exc:
                raise self._tls_error(exc, url) from None
            except RequestError as exc:
                raise RegistryError(f"{self.name}: {exc}") from None
            except NameResolutionError:
                raise RegistryError(
                    f"{self.name}: cannot resolve the host name",
                    hint="check the registry name, DNS and the network",
                ) from None
            except TransportError as exc:
                if last:
                    raise RegistryError(
                        f"{self.name}: cannot connect ({_cause(exc)} after "
                        f"{self.retries} attempts)",
                        hint="check that the registry is running and reachable",
                    ) from None
            else:
                if resp.status_code not in RETRY_STATUS or last:
                    return resp
                resp.close()
            time.sleep(self.backoff * (2**attempt))
        raise AssertionError("unreachable")

    def _tls_error(self, exc: TLSError, url: str) -> RegistryError:
        """The message and fix for a TLS failure, by its kind."""
        certs = f"$ENVKIT_HOME/certs.d/{self.name}"
        host = url.split("://", 1)[-1].split("/", 1)[0]
        if exc.kind == "client-cert":
            sent = self.tls.client_cert
            what = (
                f"the registry refused the client certificate {sent[0]}"
                if sent
                else "the registry asks for a client certificate and none is configured"
            )
            return RegistryError(
                f"{self.name}: TLS failed: {what} ({exc})",
                hint=f"put a client certificate the registry accepts in {certs}/client.cert "
                "and its key in client.key",
            )
        if exc.kind == "closed":
            sent = self.tls.client_cert
            maybe = (
                f"did it refuse the client certificate {sent[0]}?"
                if sent
                else "does it require a client certificate?"
            )
            return RegistryError(
                f"{self.name}: TLS failed: {host} closed the connection during the "
                f"handshake ({maybe})",
                hint=f"if the registry requires a client certificate, put one it accepts in "
                f"{certs}/client.cert and its key in client.key; else check that it serves "
                "TLS on this port",
            )
        if exc.kind == "files":
            return RegistryError(
                f"{self.name}: TLS failed: cannot use the CA or client certificate files: {exc}",
                hint=f"check the files in {certs}/ (ca.crt, client.cert, client.key)",
            )
        if exc.kind == "not-tls":
            return RegistryError(
                f"{self.name}: TLS failed: {host} does not speak TLS ({exc})",
                hint=f"if the registry serves plain HTTP, add {self.name} to "
                "ENVKIT_INSECURE_REGISTRIES",
            )
        reason = "certificate verify failed" if exc.kind == "verify" else "handshake failed"
        trusted = (
            f"the CA {self.tls.verify}" if isinstance(self.tls.verify, str) else "the system CAs"
        )
        return RegistryError(
            f"{self.name}: TLS failed: {reason} for {host} (checked against {trusted}): {exc}",
            hint=f"put the registry's CA in {certs}/ca.crt",
        )

    def url(self, path_or_url: str) -> str:
        """An absolute URL for ``/v2/...`` paths and the relative Locations registries send."""
        return urljoin(self.base_url + "/", path_or_url)

    # -- requests --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        repo: str,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        ok: Iterable[int] = (200,),
        what: str = "",
    ) -> Response:
        """Send one request, answering an auth challenge once; raise unless the status is
        in ``ok``. ``scope`` is the token scope (``repository:NAME:pull,push`` ...).

        Unless ``stream`` is set, the answer's body is read at once (and its connection
        free for the next request); a streamed answer must be read to its end or closed."""
        url = self.url(path_or_url)
        sent = dict(headers or {})
        auth = self.auth.header(scope)
        challenge = self._challenge
        if (
            auth is None
            and scope
            and challenge is not None
            and challenge.scheme in ("bearer", "basic")
            # The ping already said how to authenticate: answer before the request
            # instead of after its 401 (one round trip less per scope).
            and self.auth.answer(challenge, scope, self.tls)
        ):
            auth = self.auth.header(scope)
        if auth:
            sent["Authorization"] = auth
        resp = self._send_retried(method, url, sent, body)
        if resp.status_code == 401:
            challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
            resp.close()
            if challenge is None or not self.auth.answer(challenge, scope, self.tls):
                raise self._unauthorized(repo, what)
            sent["Authorization"] = self.auth.header(scope) or ""
            resp = self._send_retried(method, url, sent, body)
            if resp.status_code == 401:
                resp.close()
                raise self._unauthorized(repo, what)
        if resp.status_code not in set(ok):
            raise self._error(resp, repo, what)
        if not stream:
            try:
                resp.read()
            except TransportError:
                raise RegistryError(
                    f"{self.name}/{repo}: the connection broke{_for(what)}",
                    hint="try again; check the network and the registry",
                ) from None
        return resp

    def _unauthorized(self, repo: str, what: str) -> RegistryError:
        who = "the stored credentials were refused" if self.auth.credentials else "no credentials"
        return RegistryError(
            f"{self.name}/{repo}: unauthorized{_for(what)} ({who})",
            hint=f"run `envkit login {self.name}`",
        )

    def _error(self, resp: Response, repo: str, what: str) -> RegistryError:
        detail = _error_detail(resp)
        resp.close()
        where = f"{self.name}/{repo}" if repo else self.name
        status = resp.status_code
        if status == 403:
            return RegistryError(
                f"{where}: access denied{_for(what)}{detail}",
                hint=f"check that your account may do this; `envkit login {self.name}`",
            )
        if status == 404:
            return RegistryError(
                f"{where}: not found{_for(what)}{detail}",
                hint="check the repository name and the tag or digest",
            )
        return RegistryError(f"{where}: HTTP {status}{_for(what)}{detail}")


def scope(repo: str, actions: str = "pull") -> str:
    """A token scope for one repository."""
    return f"repository:{repo}:{actions}"


def _for(what: str) -> str:
    return f" ({what})" if what else ""


def _cause(exc: TransportError) -> str:
    """The kind of failure, as the OS or the HTTP layer named it."""
    cause = exc.__cause__
    return type(cause if cause is not None else exc).__name__


def _error_detail(resp: Response) -> str:
    """``: CODE message`` from a distribution-spec error body, if there is one."""
    try:
        errors = resp.json().get("errors") or []
        first = errors[0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, AttributeError, IndexError, TypeError, TransportError):
        return ""
    return f": {code} {message}".rstrip()
