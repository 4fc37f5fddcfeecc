"""Configuration from the environment and ``$ENVKIT_HOME/config.toml``.

The environment wins over the file. Values are read on each call (cheap), so tests can
point ``ENVKIT_HOME`` at a temporary directory with ``monkeypatch.setenv``.
"""

from __future__ import annotations

import os
import stat

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


#: The mode of ``$ENVKIT_HOME`` and of every folder envkit makes directly in it. Snapshots
#: keep the set-uid files and the owners of images; a home other users can traverse would
#: let them run those files (podman keeps its storage 0700, docker /var/lib/docker 0710).
PRIVATE_MODE = 0o700

# Paths made private (or found so) by this process: the check costs one stat per process.
_private: set[str] = set()


def private_home() -> str:
    """:func:`home_dir`, for writing: created 0700 when missing; tightened to 0700 (with
    its first-level folders) when other users can reach it, with a one-line notice.

    One ``stat`` per process on the usual path (the home exists and is private). Errors
    are left to the write that follows, which reports them with its own context.
    """
    path = home_dir()
    if path in _private:
        return path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            # Missing parents (~/.local/share) get the usual modes, as podman's do.
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.mkdir(path, PRIVATE_MODE)
        except FileExistsError:
            pass  # made by a concurrent envkit, which made it private
        except OSError:
            return path
    except OSError:
        return path
    else:
        if st.st_mode & 0o077 and _ours(st):
            _tighten(path)
    _private.add(path)
    return path


def private_dir(name: str) -> str:
    """``$ENVKIT_HOME/<name>``, a first-level folder of the home, created 0700 when
    missing (the home made private first, :func:`private_home`). Every folder envkit
    keeps directly in the home is reached through this."""
    path = os.path.join(private_home(), name)
    if path not in _private:
        # Not contextlib.suppress: its import would cost every command's start-up.
        try:  # noqa: SIM105
            os.mkdir(path, PRIVATE_MODE)
        except OSError:
            pass  # there already, or left to the write that follows to report
        _private.add(path)
    return path


def _ours(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def _tighten(home: str) -> None:
    """Make ``home`` and its first-level folders 0700, once, with a notice."""
    try:
        os.chmod(home, PRIVATE_MODE)
    except OSError:
        return
    try:
        entries = list(os.scandir(home))
    except OSError:
        entries = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if st.st_mode & 0o077 and _ours(st):
                os.chmod(entry.path, PRIVATE_MODE)
        except OSError:
            pass
    import logging  # only here: it costs milliseconds on every command's start-up

    user_home = os.path.expanduser("~")
    shown = "~" + home[len(user_home) :] if home.startswith(user_home + "/") else home
    logging.getLogger("envkit").warning(
        "envkit: tightened %s to 0700 (other users could run setuid files from images)",
        shown,
    )


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
    from pathlib import Path

    return Path(private_dir("store"))
