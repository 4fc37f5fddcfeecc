"""Registry credentials: envkit's own file, then ``~/.docker/config.json``.

envkit's file is ``$ENVKIT_HOME/auth.json`` (mode 0600), in docker's ``auths`` format.
From docker's config the ``auths`` entries (base64 ``user:password``), ``credHelpers``
and ``credsStore`` are read; helpers speak the ``docker-credential-<name> get`` protocol
(the server URL on stdin, ``{"Username": ..., "Secret": ...}`` on stdout).

Secrets never appear in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os

from envkit import settings
from envkit.errors import RegistryError
from envkit.oci.reference import DEFAULT_REGISTRY
from envkit.records import Value
from envkit.store.atomic import temp_name

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

#: The key docker uses for Docker Hub in config.json and with credential helpers.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
#: The user name a helper returns for an identity (refresh) token.
IDENTITY_TOKEN_USER = "<token>"


class Credentials(Value):
    """A user name and a secret (a password, or an identity token); the secret is left
    out of the repr."""

    username: str
    secret: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"

    @property
    def is_identity_token(self) -> bool:
        """Whether ``secret`` is an OAuth refresh token rather than a password."""
        return self.username == IDENTITY_TOKEN_USER


def auth_file() -> Path:
    """envkit's credential file."""
    from pathlib import Path  # lazy for start-up: pathlib only when credentials are read

    return Path(settings.private_home()) / "auth.json"


def docker_config() -> Path:
    """docker's client config (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``)."""
    from pathlib import Path  # lazy for start-up: pathlib only when credentials are read

    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _keys(registry: str) -> list[str]:
    """The spellings a config file may use for ``registry``."""
    if registry == DEFAULT_REGISTRY:
        return [DOCKER_HUB_KEY, "index.docker.io", "docker.io", "registry-1.docker.io"]
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(
            f"{path} is not valid JSON", hint="fix or remove the file, then log in again"
        ) from None
    return data if isinstance(data, dict) else {}


def _from_auths(data: dict[str, Any], registry: str, path: Path) -> Credentials | None:
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return None
    for key in _keys(registry):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        token = entry.get("identitytoken")
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, sep, secret = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                sep = ""
            if not sep:
                raise RegistryError(
                    f"{path}: the credentials stored for {registry} are malformed",
                    hint=f"run `envkit login {registry}` again",
                )
            if isinstance(token, str) and token:
                return Credentials(IDENTITY_TOKEN_USER, token)
            return Credentials(user, secret)
        if isinstance(token, str) and token:
            return Credentials(IDENTITY_TOKEN_USER, token)
    return None


def helper_get(helper: str, registry: str) -> Credentials | None:
    """Ask ``docker-credential-<helper>`` for ``registry``; None when it knows nothing."""
    import subprocess  # lazy: only with a credential helper

    server = DOCKER_HUB_KEY if registry == DEFAULT_REGISTRY else registry
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=30, check=False
        )
    except FileNotFoundError:
        raise RegistryError(
            f"credential helper {program} (configured in {docker_config()}) is not installed",
            hint=f"install {program} or remove it from the docker config",
        ) from None
    except subprocess.TimeoutExpired:
        raise RegistryError(f"credential helper {program} did not answer in 30 s") from None
    if proc.returncode != 0:
        # The protocol says "credentials not found in native keychain" on stdout.
        return None
    try:
        data = json.loads(proc.stdout)
        return Credentials(str(data["Username"]), str(data["Secret"]))
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"credential helper {program} gave an unreadable answer") from None


def lookup(registry: str) -> Credentials | None:
    """The credentials for ``registry`` (as references name it), or None for anonymous."""
    found = _from_auths(_read_json(auth_file()), registry, auth_file())
    if found is not None:
        return found
    config = _read_json(docker_config())
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key in _keys(registry):
            helper = helpers.get(key)
            if isinstance(helper, str) and helper:
                return helper_get(helper, registry)
    found = _from_auths(config, registry, docker_config())
    if found is not None:
        return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return helper_get(store, registry)
    return None


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name("credentials"))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save(registry: str, creds: Credentials) -> Path:
    """Store ``creds`` for ``registry`` in envkit's file; returns the file's path."""
    path = auth_file()
    data = _read_json(path)
    auths = data.get("auths")
    if not isinstance(auths, dict):
        auths = data["auths"] = {}
    encoded = base64.b64encode(f"{creds.username}:{creds.secret}".encode()).decode()
    auths[registry] = {"auth": encoded}
    _write_private(path, data)
    return path


def erase(registry: str) -> bool:
    """Forget ``registry`` in envkit's file; returns whether there was an entry."""
    path = auth_file()
    data = _read_json(path)
    auths = data.get("auths")
    if not isinstance(auths, dict) or registry not in auths:
        return False
    del auths[registry]
    _write_private(path, data)
    return True
