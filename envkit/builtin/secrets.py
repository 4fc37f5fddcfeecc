"""Built-in secret providers: ``env`` (an environment variable), ``file`` (a file) and
``cmd`` (the output of a command, like ``cmd:pass show db``)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import EnvkitError
from envkit.plugins import hookimpl
from envkit.plugins.interfaces import SecretProvider
from envkit.plugins.overrides import override


class EnvSecrets(SecretProvider):
    """``Secret.from_env("NAME")``: the value of an environment variable."""

    scheme = "env"

    @override
    def read(self, location: str) -> bytes | None:
        value = os.environ.get(location)
        return None if value is None else value.encode()


class FileSecrets(SecretProvider):
    """``Secret.from_file("path")``: the bytes of a file."""

    scheme = "file"

    @override
    def read(self, location: str) -> bytes | None:
        try:
            return Path(location).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EnvkitError(f"secret file {location}: {exc.strerror}") from None


class CmdSecrets(SecretProvider):
    """``Secret("token", source="cmd:pass show ci/token")``: what a command prints.

    The location is split like a shell would (``shlex``) but run without one. One
    trailing newline is dropped (what ``pass``, ``gopass`` and ``vault read -field``
    print). A command that exits non-zero is an error naming the command and its exit
    status, never its output; a command that is not installed is an absent secret.
    """

    scheme = "cmd"
    timeout = 60.0

    @override
    def read(self, location: str) -> bytes | None:
        try:
            argv = shlex.split(location)
        except ValueError as exc:
            raise EnvkitError(
                f"secret command {location!r} cannot be split: {exc}",
                hint="quote it as a shell would",
            ) from None
        if not argv:
            raise EnvkitError("secret command is empty", hint='write "cmd:program args..."')
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            return None
        except subprocess.TimeoutExpired:
            raise EnvkitError(
                f"secret command {argv[0]!r} did not finish in {self.timeout:.0f} s",
                hint="it may be waiting for input (a passphrase prompt?)",
            ) from None
        except OSError as exc:
            raise EnvkitError(f"secret command {argv[0]!r}: {exc.strerror}") from None
        if proc.returncode != 0:
            raise EnvkitError(
                f"secret command {argv[0]!r} failed with exit status {proc.returncode}",
                hint="run it yourself to see why (its output is not shown: it may be secret)",
            )
        out = proc.stdout
        return out[:-1] if out.endswith(b"\n") else out


@hookimpl
def envkit_secret_providers() -> Sequence[SecretProvider]:
    return [EnvSecrets(), FileSecrets(), CmdSecrets()]
