"""Configuration from the environment and ``$ENVKIT_HOME/config.toml``.

The environment wins over the file. Values are read on each call (cheap), so tests can
point ``ENVKIT_HOME`` at a temporary directory with ``monkeypatch.setenv``.
"""

from __future__ import annotations

import os

from envkit.errors import EnvkitError

TYPE_CHECKING = False  # typing is not imported at run time (every command's start-up)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def home() -> Path:
    """The envkit home: store, state and volumes live below it."""
    from pathlib import Path

    return Path(home_dir())


def home_dir() -> str:
    """:func:`home` as a string: without pathlib, whose import (urllib.parse, ipaddress)
    costs milliseconds on ``envkit run``'s start-up path."""
    value = os.environ.get("ENVKIT_HOME")
    if value:
        return os.path.abspath(os.path.expanduser(value))
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(data, "envkit")


def _file_config() -> dict[str, Any]:
    path = os.path.join(home_dir(), "config.toml")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise EnvkitError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        import tomllib  # only when a config file exists: it costs ~10 ms to import

        return tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvkitError(
            f"{path}: not valid TOML: {exc}", hint="fix the file or remove it"
        ) from None


def get(name: str, default: str = "") -> str:
    """A setting: environment ``ENVKIT_<NAME>`` first, then ``name`` in config.toml."""
    env = os.environ.get("ENVKIT_" + name.upper())
    if env is not None:
        return env
    value = _file_config().get(name.lower())
    if value is None:
        return default
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def debug() -> bool:
    """Whether ``ENVKIT_DEBUG`` asks for tracebacks."""
    return os.environ.get("ENVKIT_DEBUG", "") not in ("", "0", "false", "no")


def store_root() -> Path:
    """Where the OCI image layout of the local store lives."""
    return home() / "store"
