"""The registry auth flows: ``WWW-Authenticate`` challenges, bearer tokens, basic auth.

A registry answers an unauthenticated request with 401 and a challenge. ``Basic`` asks
for the user and password on every request; ``Bearer realm=...,service=...,scope=...``
asks for a token from the realm, fetched anonymously or with the credentials (or, for an
identity token, by the OAuth2 refresh-token grant), then sent as ``Authorization: Bearer``.
Tokens are cached per scope until shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from urllib.parse import urlencode

from envkit.errors import RegistryError
from envkit.records import Value, field
from envkit.registry.transport import TransportError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.registry.credentials import Credentials
    from envkit.registry.transport import Response, TLSOptions, Transport

_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
#: Lifetime assumed when a token response names none (the distribution spec's default).
DEFAULT_TOKEN_SECONDS = 60
CLIENT_ID = "envkit"


class Challenge(Value):
    """One parsed ``WWW-Authenticate`` challenge: ``scheme`` in lower case ("bearer" or
    "basic") and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` header (None when empty)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace(
            '\\"', '"'
        )
        for m in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def basic_header(creds: Credentials) -> str:
    """The ``Authorization`` value for basic auth."""
    raw = f"{creds.username}:{creds.secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class _Token(Value):
    value: str
    expires: float


class Authenticator:
    """Answers challenges for one registry and remembers the answers.

    ``registry`` is only used in messages; ``credentials`` may be None (anonymous).
    """

    def __init__(
        self, registry: str, credentials: Credentials | None, transport: Transport
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._transport = transport
        self._tokens: dict[str, _Token] = {}
        self._basic = False
        self._lock = threading.Lock()

    def header(self, scope: str) -> str | None:
        """The ``Authorization`` value to send for ``scope``, if one is known."""
        with self._lock:
            if self._basic and self.credentials is not None:
                return basic_header(self.credentials)
            token = self._tokens.get(scope)
            if token is not None and token.expires > time.monotonic():
                return "Bearer " + token.value
        return None

    def answer(self, challenge: Challenge, scope: str, tls: TLSOptions) -> bool:
        """Obtain what ``challenge`` asks for; returns False when there is nothing to try
        (basic auth without credentials)."""
        if challenge.scheme == "basic":
            if self.credentials is None or self.credentials.is_identity_token:
                return False
            with self._lock:
                self._basic = True
            return True
        if challenge.scheme != "bearer":
            raise RegistryError(
                f"{self.registry}: unsupported authentication scheme {challenge.scheme!r}",
                hint="envkit speaks Basic and Bearer token authentication",
            )
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError(f"{self.registry}: bearer challenge without a realm")
        wanted = scope or challenge.params.get("scope", "")
        token = self._fetch_token(realm, challenge.params.get("service", ""), wanted, tls)
        with self._lock:
            self._tokens[scope] = token
        return True

    def _fetch_token(self, realm: str, service: str, scope: str, tls: TLSOptions) -> _Token:
        creds = self.credentials
        scopes = scope.split() if scope else []
        try:
            resp = self._token_request(realm, service, scopes, tls)
            with resp:
                status = resp.status_code
                body = resp.content if status == 200 else b""
        except TransportError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise RegistryError(
                f"{self.registry}: token server {realm} unreachable: {type(cause).__name__}: {exc}",
                hint="check the network and the registry's auth service",
            ) from None
        if status in (401, 403):
            raise RegistryError(
                f"{self.registry}: the token server refused "
                + ("the stored credentials" if creds else "anonymous access"),
                hint=f"run `envkit login {self.registry}`",
            )
        if status != 200:
            raise RegistryError(f"{self.registry}: token server {realm} answered HTTP {status}")
        try:
            data = json.loads(body)
            value = data.get("token") or data.get("access_token")
            lifetime = int(data.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            value = None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{self.registry}: token server {realm} sent no token")
        # Renew a little early so a token does not expire in flight.
        expires = time.monotonic() + max(lifetime - 10, 5)
        return _Token(value, expires)

    def _token_request(
        self, realm: str, service: str, scopes: list[str], tls: TLSOptions
    ) -> Response:
        """The token request: the OAuth2 refresh-token grant for an identity token, else
        a GET with the scopes (and basic credentials, when there are any)."""
        creds = self.credentials
        if creds is not None and creds.is_identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.secret,
                "service": service,
                "client_id": CLIENT_ID,
                "scope": " ".join(scopes),
            }
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            return self._transport.send("POST", realm, headers, urlencode(form).encode(), tls=tls)
        query: list[tuple[str, str]] = [("scope", s) for s in scopes]
        if service:
            query.append(("service", service))
        headers = {}
        if creds is not None:
            headers["Authorization"] = basic_header(creds)
            query.append(("account", creds.username))
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        return self._transport.send("GET", url, headers, tls=tls)
