"""Built-in secret providers: ``env`` (an environment variable) and ``file`` (a file)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import EnvkitError
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import SecretProvider


class EnvSecrets:
    """``Secret.from_env("NAME")``: the value of an environment variable."""

    scheme = "env"

    def read(self, location: str) -> bytes | None:
        value = os.environ.get(location)
        return None if value is None else value.encode()


class FileSecrets:
    """``Secret.from_file("path")``: the bytes of a file."""

    scheme = "file"

    def read(self, location: str) -> bytes | None:
        try:
            return Path(location).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EnvkitError(f"secret file {location}: {exc.strerror}") from None


@hookimpl
def envkit_secret_providers() -> Sequence[SecretProvider]:
    return [EnvSecrets(), FileSecrets()]
