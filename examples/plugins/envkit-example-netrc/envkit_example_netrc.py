"""A ``netrc:`` secret provider: ``Secret("token", source="netrc:registry.example")`` is
the password of that machine in ``$NETRC`` (default ``~/.netrc``).

Exercises the secret provider hook with the standard library's :mod:`netrc` parser.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import EnvkitError
from envkit.plugins import SecretProvider, hookimpl


class NetrcSecrets:
    """Passwords from a netrc file, by machine name; ``login@machine`` picks the login
    too (and is absent when the file names another login for that machine)."""

    scheme = "netrc"

    def read(self, location: str) -> bytes | None:
        path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
        try:
            parsed = netrc.netrc(str(path))
        except FileNotFoundError:
            return None
        except netrc.NetrcParseError as exc:
            # The message names the file and line only, never a value.
            raise EnvkitError(
                f"{path}: line {exc.lineno}: not a valid netrc file",
                hint="fix that line",
            ) from None
        login, _, machine = location.rpartition("@")
        entry = parsed.authenticators(machine)
        if entry is None or (login and entry[0] != login):
            return None
        return entry[2].encode()


@hookimpl
def envkit_secret_providers() -> Sequence[SecretProvider]:
    return [NetrcSecrets()]
