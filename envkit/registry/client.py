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
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3

from envkit.errors import RegistryError
from envkit.registry.auth import Authenticator, parse_challenge
from envkit.registry.credentials import Credentials, lookup
from envkit.registry.endpoints import Endpoint, endpoint

#: A request body: bytes, or a callable making a fresh body (a file-like) per attempt.
Body = bytes | Callable[[], Any] | None

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
TIMEOUT = (10.0, 120.0)  # connect, read (seconds)
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
        session: requests.Session | None = None,
        retries: int = 4,
        backoff: float = 0.25,
    ) -> None:
        self.endpoint = registry if isinstance(registry, Endpoint) else endpoint(registry)
        self.name = self.endpoint.name
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "envkit")
        if credentials is _UNSET:
            credentials = lookup(self.name)
        self.auth = Authenticator(self.name, credentials, self.session)
        self.retries = max(1, retries)
        self.backoff = backoff
        self._base: str | None = None
        self._base_lock = threading.Lock()

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
                resp = self._send_retried("GET", base + "/v2/", {}, None, stream=False)
            except RegistryError as exc:
                errors[scheme] = exc
                continue
            if resp.status_code in (200, 401):
                resp.close()
                return base
            errors[scheme] = self._error(resp, "", "ping")
        raise errors.get("https") or next(iter(errors.values()))

    def _send_once(
        self, method: str, url: str, headers: Mapping[str, str], body: Body, stream: bool
    ) -> requests.Response:
        data: Any = body() if callable(body) else body
        return self.session.request(
            method,
            url,
            headers=dict(headers),
            data=data,
            stream=stream,
            verify=self.endpoint.verify,
            cert=self.endpoint.client_cert,
            timeout=TIMEOUT,
            allow_redirects=True,
        )

    def _send_retried(
        self, method: str, url: str, headers: Mapping[str, str], body: Body, *, stream: bool
    ) -> requests.Response:
        for attempt in range(self.retries):
            last = attempt == self.retries - 1
            try:
                resp = self._send_once(method, url, headers, body, stream)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"{self.name}: TLS failed: {_reason(exc)}",
                    hint=f"put the registry's CA in $ENVKIT_HOME/certs.d/{self.name}/ca.crt",
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if _unresolvable(exc):
                    raise RegistryError(
                        f"{self.name}: cannot resolve the host name",
                        hint="check the registry name, DNS and the network",
                    ) from None
                if last:
                    raise RegistryError(
                        f"{self.name}: cannot connect ({type(exc).__name__} after "
                        f"{self.retries} attempts)",
                        hint="check that the registry is running and reachable",
                    ) from None
            else:
                if resp.status_code not in RETRY_STATUS or last:
                    return resp
                resp.close()
            time.sleep(self.backoff * (2**attempt))
        raise AssertionError("unreachable")

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
    ) -> requests.Response:
        """Send one request, answering an auth challenge once; raise unless the status is
        in ``ok``. ``scope`` is the token scope (``repository:NAME:pull,push`` ...)."""
        url = self.url(path_or_url)
        sent = dict(headers or {})
        auth = self.auth.header(scope)
        if auth:
            sent["Authorization"] = auth
        resp = self._send_retried(method, url, sent, body, stream=stream)
        if resp.status_code == 401:
            challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
            resp.close()
            if challenge is None or not self.auth.answer(challenge, scope, self.endpoint.verify):
                raise self._unauthorized(repo, what)
            sent["Authorization"] = self.auth.header(scope) or ""
            resp = self._send_retried(method, url, sent, body, stream=stream)
            if resp.status_code == 401:
                raise self._unauthorized(repo, what)
        if resp.status_code not in set(ok):
            raise self._error(resp, repo, what)
        return resp

    def _unauthorized(self, repo: str, what: str) -> RegistryError:
        who = "the stored credentials were refused" if self.auth.credentials else "no credentials"
        return RegistryError(
            f"{self.name}/{repo}: unauthorized{_for(what)} ({who})",
            hint=f"run `envkit login {self.name}`",
        )

    def _error(self, resp: requests.Response, repo: str, what: str) -> RegistryError:
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


def _unresolvable(exc: BaseException) -> bool:
    """Whether a connection failed on the host name (not worth retrying)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, urllib3.exceptions.NameResolutionError):
            return True
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = reason if isinstance(reason, BaseException) else nested
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return "the server does not speak TLS"
    return type(exc).__name__


def _error_detail(resp: requests.Response) -> str:
    """``: CODE message`` from a distribution-spec error body, if there is one."""
    try:
        errors = resp.json().get("errors") or []
        first = errors[0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, AttributeError, IndexError, TypeError, requests.RequestException):
        return ""
    return f": {code} {message}".rstrip()
