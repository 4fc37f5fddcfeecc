"""Where a registry named in a reference is reached: URL scheme, TLS trust, mirrors.

Names follow docker: ``docker.io`` is served by ``registry-1.docker.io``; plain HTTP is
allowed only for loopback registries and those listed in ``ENVKIT_INSECURE_REGISTRIES``;
a CA for one registry lives in ``$ENVKIT_HOME/certs.d/<host:port>/ca.crt``, a TLS client
certificate beside it as ``client.cert`` and ``client.key`` (both, or an error).
"""

from __future__ import annotations

from envkit import settings
from envkit.errors import RegistryError
from envkit.oci.reference import DEFAULT_REGISTRY
from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from pathlib import Path

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"


class Endpoint(Value):
    """How to talk to one registry.

    ``name`` is the registry as references spell it (``docker.io``, ``127.0.0.1:5000``);
    ``host`` what is contacted. ``plain_http_allowed``: plain HTTP may be used (see
    :meth:`urls` for the order). ``verify`` is a CA bundle path, True (the system's CAs) or
    False (no verification).
    """

    name: str
    host: str
    plain_http_allowed: bool
    verify: bool | str
    client_cert: tuple[str, str] | None = None

    def urls(self) -> list[str]:
        """Base URLs to try, in order.

        Where plain HTTP is allowed and no CA is configured for the registry, plain HTTP
        is tried first: a local test registry usually speaks it, and a TLS one answers
        a plain request at once with 400, so HTTPS follows without a timeout.
        """
        https, http = f"https://{self.host}", f"http://{self.host}"
        if not self.plain_http_allowed:
            return [https]
        return [https, http] if isinstance(self.verify, str) else [http, https]


def _split_host(host: str) -> str:
    """The host part of ``host[:port]`` (IPv6 brackets removed)."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` is this machine: localhost, 127.0.0.0/8 or ::1."""
    name = _split_host(host)
    if name == "localhost":
        return True
    if name.startswith("127.") or name == "::1":
        return True
    import ipaddress  # ~1 ms, for the other spellings of an address

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _listed(setting: str) -> list[str]:
    return [item.strip() for item in settings.get(setting).split(",") if item.strip()]


def insecure_registries() -> list[str]:
    """Registries allowed over plain HTTP beside the loopback ones."""
    return _listed("insecure_registries")


def mirrors_for(registry: str) -> list[str]:
    """Mirror hosts configured for ``registry`` (``ENVKIT_REGISTRY_MIRRORS``), in order."""
    out = []
    for item in _listed("registry_mirrors"):
        name, sep, mirror = item.partition("=")
        if sep and name.strip() == registry and mirror.strip():
            out.append(mirror.strip().removeprefix("https://").removeprefix("http://"))
    return out


def certs_dir(host: str) -> Path:
    """docker's certs.d convention, under the envkit home."""
    return settings.home() / "certs.d" / host


def endpoint(registry: str) -> Endpoint:
    """The endpoint of ``registry`` as a reference names it."""
    host = DOCKER_HUB_ENDPOINT if registry == DEFAULT_REGISTRY else registry
    insecure = registry in insecure_registries() or host in insecure_registries()
    certs = certs_dir(registry)
    ca = certs / "ca.crt"
    verify: bool | str = str(ca) if ca.is_file() else True
    if insecure and verify is True:
        # docker skips verification for registries the user marked insecure.
        verify = False
    cert, key = certs / "client.cert", certs / "client.key"
    client_cert = None
    if cert.is_file() or key.is_file():
        if not (cert.is_file() and key.is_file()):
            have, lacking = (cert, key) if cert.is_file() else (key, cert)

            raise RegistryError(
                f"{registry}: {have} has no {lacking.name} beside it (a TLS client "
                "certificate needs both)",
                hint=f"put the missing file in {certs}, or remove {have.name}",
            )
        client_cert = (str(cert), str(key))
    return Endpoint(
        name=registry,
        host=host,
        plain_http_allowed=insecure or is_loopback(host),
        verify=verify,
        client_cert=client_cert,
    )
