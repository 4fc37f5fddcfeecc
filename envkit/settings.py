"""Configuration from the environment and ``$ENVKIT_HOME/config.toml``.

The environment wins over the file. Values are read on each call (cheap), so tests can
point ``ENVKIT_HOME`` at a temporary directory with ``monkeypatch.setenv``.
"""

from __future__ import annotations

import errno
import os
import stat

from envkit.errors import EnvkitError, HomeError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def home() -> Path:
    """The envkit home: store, state and volumes live below it."""
    from pathlib import Path  # lazy for start-up: pathlib only when a Path is asked for

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


#: What a write into a place envkit keeps its data fails with when the place, not the
#: request, is at fault: no permission, read-only, full, over quota.
PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> HomeError | None:
    """``exc`` as one :class:`HomeError` naming ``ENVKIT_HOME`` (or the temporary
    directory) and the fix, when it says that place cannot be written; else ``None``.

    ``path`` is what was being written when ``exc`` carries no file name (a ``write`` or
    ``fsync`` on an open file). A full disk with no file name at all is the home's: it is
    where envkit writes nearly everything, and a read never fails with ``ENOSPC``.
    A permission error counts only under the home, and only when the place really is not
    writable (``EACCES`` from executing a file, or ``EPERM`` from a ``chown``, are other
    matters; so is an unreadable input file in ``/tmp``).
    """
    code = exc.errno
    if code not in PERMISSION_ERRNOS and code not in SPACE_ERRNOS:
        return None
    name = exc.filename if exc.filename is not None else path
    where = os.fsdecode(name) if isinstance(name, str | bytes | os.PathLike) else None
    place = _place(where)
    if place is None:
        if code not in SPACE_ERRNOS or where is not None:
            return None
        place = ("ENVKIT_HOME", home_dir())
    label, root = place
    if label != "ENVKIT_HOME" and code not in SPACE_ERRNOS:
        return None  # an unreadable input file that happens to be in /tmp
    if code in PERMISSION_ERRNOS and code != errno.EROFS and where is not None:
        # A rename names both ends (its source, a temp file, may well be writable).
        names = [where]
        if isinstance(exc.filename2, str | bytes | os.PathLike):
            names.append(os.fsdecode(exc.filename2))
        blocked = [n for n in names if _place(n) == place and not _writable(n)]
        if not blocked:
            return None
        where = blocked[-1]
    detail = exc.strerror or os.strerror(code or 0)
    shown = f"{label} ({root})"
    if where is not None and os.path.abspath(where) != root:
        detail = f"{os.path.relpath(os.path.abspath(where), root)}: {detail}"
    set_home = (
        "set ENVKIT_HOME to a directory" if label == "ENVKIT_HOME" else "set TMPDIR to a directory"
    )
    if code in SPACE_ERRNOS:
        hint = (
            f"free space on the file system of {root} (`envkit prune` removes unused "
            f"images), or {set_home} on a larger one"
        )
    elif code == errno.EROFS:
        hint = f"{root} is on a read-only file system: {set_home} on a writable one"
    else:
        hint = (
            f"{set_home} you can write to, or give {root} back to your user "
            f'(chown -R "$(id -un)" {root}; chmod 700 {root})'
        )
    return HomeError(f"cannot write to {shown}: {detail}", hint=hint)


def _place(path: str | None) -> tuple[str, str] | None:
    """``("ENVKIT_HOME", home)`` or ``("the temporary directory", tmp)`` holding ``path``."""
    if path is None:
        return None
    import tempfile  # only on an error's path

    path = os.path.abspath(path)
    for label, root in (
        ("ENVKIT_HOME", home_dir()),
        ("the temporary directory", tempfile.gettempdir()),
    ):
        root = os.path.abspath(root)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return label, root
    return None


def _writable(path: str) -> bool:
    """Whether ``path`` may be written, made, replaced or removed: it (when there) and the
    nearest existing folder above it are writable."""
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.access(path, os.W_OK):
        return False
    parent = os.path.dirname(path)
    while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    return os.access(parent, os.W_OK)


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
    from pathlib import Path  # lazy for start-up: pathlib only when a Path is asked for

    return Path(private_dir("store"))
