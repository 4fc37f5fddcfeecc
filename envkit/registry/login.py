"""``envkit login`` / ``logout``: check credentials against a registry, then keep them."""

from __future__ import annotations

from envkit.errors import RegistryError
from envkit.oci.reference import DEFAULT_REGISTRY
from envkit.registry import credentials
from envkit.registry.client import RegistryClient
from envkit.registry.credentials import Credentials

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "docker.io"}


def registry_name(text: str) -> str:
    """``host[:port]`` as references name it, from what a user types
    (``https://index.docker.io/v1/``, ``localhost:5000/``, ``docker.io``)."""
    name = text.strip()
    for prefix in ("https://", "http://"):
        name = name.removeprefix(prefix)
    name = name.split("/", 1)[0].lower()
    if not name:
        raise RegistryError(f"invalid registry {text!r}", hint="give host[:port]")
    return DEFAULT_REGISTRY if name in _HUB_ALIASES else name


def login(
    registry: str,
    creds: Credentials,
    *,
    client_factory: Callable[..., RegistryClient] = RegistryClient,
) -> Path:
    """Check ``creds`` against ``registry`` (``GET /v2/`` through its auth flow), then
    store them in ``$ENVKIT_HOME/auth.json``; returns that file's path."""
    name = registry_name(registry)
    try:
        with client_factory(name, credentials=creds) as client:
            client.request("GET", "/v2/", repo="", scope="", what="login").close()
    except RegistryError as exc:
        if "unauthorized" in exc.message or "refused" in exc.message:
            raise RegistryError(
                f"{name}: login failed: the registry refused the credentials of "
                f"user {creds.username!r}",
                hint="check the user name and password (or token)",
            ) from None
        raise
    return credentials.save(name, creds)


def logout(registry: str) -> bool:
    """Forget the credentials envkit keeps for ``registry``; returns whether it had any."""
    return credentials.erase(registry_name(registry))
