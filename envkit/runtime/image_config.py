"""Docker's rules for turning an image config plus run options into a container's process.

* command: ``--entrypoint`` replaces the image's ``Entrypoint`` and clears its ``Cmd``;
  run arguments replace ``Cmd``; the process is ``Entrypoint + Cmd``.
* environment: the image's ``Env``, then the run's ``-e`` (which win); ``PATH`` defaults
  to :data:`~envkit.runtime.config.DEFAULT_PATH`, ``HOME`` to the user's passwd home.
* working dir: ``-w``, else ``WorkingDir``, else ``/`` (created when missing).
* user: ``-u``, else ``User``, else root; ``name``, ``uid``, ``name:group``, ``uid:gid``;
  names come from the image's ``/etc/passwd`` and ``/etc/group``; supplementary groups
  are the ``/etc/group`` entries listing the user by name.
"""

from __future__ import annotations

import os
import stat

from envkit.errors import SpecError
from envkit.runtime.config import DEFAULT_PATH

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class ExecUser:
    """The container ids a process runs as, and the home directory passwd gives it."""

    __slots__ = ("gid", "groups", "home", "uid")

    def __init__(
        self, uid: int = 0, gid: int = 0, groups: tuple[int, ...] = (), home: str = "/"
    ) -> None:
        self.uid, self.gid, self.groups, self.home = uid, gid, groups, home

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExecUser):
            return NotImplemented
        return (self.uid, self.gid, self.groups, self.home) == (
            other.uid,
            other.gid,
            other.groups,
            other.home,
        )

    def __hash__(self) -> int:
        return hash((self.uid, self.gid, self.groups, self.home))

    def __repr__(self) -> str:
        return f"ExecUser(uid={self.uid}, gid={self.gid}, groups={self.groups}, home={self.home!r})"


def command(
    image: Mapping[str, object],
    cmd: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
) -> list[str]:
    """The argv of the container's process (``image`` is the config's ``config`` object).

    ``entrypoint=[]`` clears the image's entrypoint, as ``--entrypoint ""`` does.
    """
    if entrypoint is not None:
        argv = [*entrypoint, *(cmd or ())]
    else:
        argv = [*_strings(image, "Entrypoint"), *(cmd or _strings(image, "Cmd"))]
    if not argv:
        raise SpecError(
            "command",
            "the image has no Entrypoint or Cmd and no command was given",
            hint="pass the command after the image: envkit run IMAGE sh -c '...'",
        )
    return argv


def environment(
    image: Mapping[str, object], overrides: Mapping[str, str] | None = None, home: str = "/"
) -> dict[str, str]:
    """The image's ``Env`` with ``overrides`` applied, plus the PATH and HOME defaults."""
    env: dict[str, str] = {}
    for item in _strings(image, "Env"):
        key, sep, value = item.partition("=")
        if key:
            env[key] = value if sep else ""
    env.update(overrides or {})
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    return env


def workdir(image: Mapping[str, object], override: str | None = None) -> str:
    """``-w``, else the image's ``WorkingDir``, else ``/``; always absolute."""
    value = override or str(image.get("WorkingDir") or "") or "/"
    if not value.startswith("/"):
        raise SpecError("workdir", "must be an absolute path", value=value, hint="e.g. -w /app")
    return value


def resolve_user(spec: str, passwd: str = "", group: str = "") -> ExecUser:
    """Resolve ``user[:group]`` against the text of ``/etc/passwd`` and ``/etc/group``.

    A numeric uid absent from passwd runs with gid 0 and home ``/``, as in docker; an
    unknown name is an error.
    """
    user_part, _, group_part = spec.partition(":")
    users = _table(passwd, 7)
    groups = _table(group, 4)
    entry = next((u for u in users if (user_part or "0") in (u[0], u[2])), None)
    if entry is not None and entry[2].isdigit() and entry[3].isdigit():
        name, uid, gid, home = entry[0], int(entry[2]), int(entry[3]), entry[5] or "/"
    elif (user_part or "0").isdigit():
        name, uid, gid = "", int(user_part or "0"), 0
        home = "/root" if uid == 0 else "/"
    else:
        raise SpecError(
            "user",
            f"no user {user_part!r} in the image's /etc/passwd",
            hint="give a numeric uid (-u 1000:1000), or add the user to the image",
        )
    if group_part:
        match = next((g for g in groups if group_part in (g[0], g[2])), None)
        if match is not None and match[2].isdigit():
            gid = int(match[2])
        elif group_part.isdigit():
            gid = int(group_part)
        else:
            raise SpecError(
                "user",
                f"no group {group_part!r} in the image's /etc/group",
                hint="give a numeric gid (-u USER:1000), or add the group to the image",
            )
    extra: list[int] = []
    if name:
        for g in groups:
            if name in g[3].split(",") and g[2].isdigit() and int(g[2]) != gid:
                extra.append(int(g[2]))
    return ExecUser(uid, gid, tuple(dict.fromkeys(extra)), home)


def read_image_file(layers: Sequence[str], path: str) -> str:
    """The text of ``path`` in the image whose lower dirs are ``layers`` (top first).

    Symlinks resolve inside each layer (never out to the host); ``""`` when absent or
    not a regular file (a named pipe of a hostile image must not block the reader).
    """
    from envkit.runtime.rootfs import secure_join  # lazy: keeps ctypes off `envkit ps`/`down`

    for layer in layers:
        host = secure_join(layer, path)
        if os.path.lexists(host):
            try:
                fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError:
                return ""
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return ""
            with open(fd, encoding="utf-8", errors="replace") as f:
                return f.read(1 << 20)
    return ""


def _strings(image: Mapping[str, object], key: str) -> list[str]:
    value = image.get(key)
    if value is None:
        return []
    if isinstance(value, str):  # a shell-form string some tools write
        return ["/bin/sh", "-c", value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"image config {key}", "must be a list of strings", value=value)
    return list(value)


def _table(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows
