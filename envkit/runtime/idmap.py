"""User-namespace id maps: which host ids a container's ids stand for.

Three cases, one code path:

* an unprivileged user granted >= 65536 subordinate ids (``/etc/subuid``, ``/etc/subgid``)
  and with ``newuidmap``/``newgidmap`` installed: container 0 is the caller, container
  1..65536 are the subordinate range. The setuid helpers write the maps.
* an unprivileged user without them: a single-id map, container 0 is the caller and no
  other id exists (see :data:`SINGLE_ID_WARNING`). The parent writes the map itself.
* root: container ids 0..65535 map to root's subordinate range, or to
  :data:`ROOT_FALLBACK_RANGE` when root has none; never to host root. Root writes the maps
  itself (it holds CAP_SETUID over the parent namespace).
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass

from envkit.errors import RuntimeError_

RANGE = 65536
#: Host ids for container 0..65535 when root has no ``/etc/subuid`` entry. High above
#: useradd's automatic allocations (SUB_UID_MAX 600100000) so no user's range overlaps it.
ROOT_FALLBACK_RANGE = (1_000_000_000, RANGE)

SINGLE_ID_WARNING = (
    "no subordinate id range for {user} (or newuidmap/newgidmap missing): the container "
    "gets a single-id map, so only root exists inside; chown to other users, images whose "
    "files belong to other users, and -u with another user fail. Fix: "
    "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user} "
    "(and apt-get install uidmap)"
)


@dataclass(frozen=True)
class Extent:
    """``count`` ids from ``inside`` map to ``outside`` on the host (one map line)."""

    inside: int
    outside: int
    count: int


@dataclass(frozen=True)
class IdMaps:
    """The uid and gid maps of one container, and how to write them."""

    uids: tuple[Extent, ...]
    gids: tuple[Extent, ...]
    #: Write through newuidmap/newgidmap (setuid helpers) rather than /proc directly.
    use_helpers: bool
    #: Set when the maps limit what runs inside (the single-id fallback).
    warning: str = ""

    @property
    def single_id(self) -> bool:
        return len(self.uids) == 1 and self.uids[0].count == 1

    def to_host_uid(self, uid: int) -> int:
        """The host uid that container ``uid`` is; :class:`RuntimeError_` if unmapped."""
        return _to_host(self.uids, uid, "uid")

    def to_host_gid(self, gid: int) -> int:
        """The host gid that container ``gid`` is; :class:`RuntimeError_` if unmapped."""
        return _to_host(self.gids, gid, "gid")

    def write(self, pid: int) -> None:
        """Install both maps on the process ``pid`` that just unshared its user namespace."""
        if self.use_helpers:
            import subprocess

            for tool, extents in (("newuidmap", self.uids), ("newgidmap", self.gids)):
                argv = [tool, str(pid)]
                for e in extents:
                    argv += [str(e.inside), str(e.outside), str(e.count)]
                done = subprocess.run(argv, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError_(
                        f"{tool} {pid} failed: {done.stderr.strip() or done.returncode}",
                        hint="check the ranges in /etc/subuid and /etc/subgid "
                        "(envkit doctor shows them)",
                    )
            return
        try:
            if os.geteuid() != 0:
                # An unprivileged writer must give up setgroups before writing gid_map.
                _write(f"/proc/{pid}/setgroups", "deny")
            _write(f"/proc/{pid}/uid_map", _lines(self.uids))
            _write(f"/proc/{pid}/gid_map", _lines(self.gids))
        except OSError as exc:
            raise RuntimeError_(
                f"cannot write the id maps of process {pid}: {exc.strerror}",
                hint="envkit doctor checks user namespace support",
            ) from None


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _lines(extents: tuple[Extent, ...]) -> str:
    return "".join(f"{e.inside} {e.outside} {e.count}\n" for e in extents)


def _to_host(extents: tuple[Extent, ...], cid: int, kind: str) -> int:
    for e in extents:
        if e.inside <= cid < e.inside + e.count:
            return e.outside + cid - e.inside
    raise RuntimeError_(
        f"container {kind} {cid} has no host {kind} in this user namespace",
        hint=f"grant a subordinate range (usermod --add-subuids/--add-subgids) or run as {kind} 0",
    )


def subordinate_range(path: str, user: str, uid: int) -> tuple[int, int] | None:
    """The first range in ``path`` for ``user`` (by name or uid) with >= 65536 ids."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (user, str(uid)):
            continue
        if parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) >= RANGE:
            return int(parts[1]), int(parts[2])
    return None


def plan(subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> IdMaps:
    """The maps for the calling user (see the module docstring for the three cases)."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    sub_u = subordinate_range(subuid, user, uid)
    sub_g = subordinate_range(subgid, user, uid)
    if uid == 0:
        u_start, _ = sub_u or ROOT_FALLBACK_RANGE
        g_start, _ = sub_g or ROOT_FALLBACK_RANGE
        return IdMaps((Extent(0, u_start, RANGE),), (Extent(0, g_start, RANGE),), False)
    helpers = shutil.which("newuidmap") and shutil.which("newgidmap")
    if sub_u and sub_g and helpers:
        return IdMaps(
            (Extent(0, uid, 1), Extent(1, sub_u[0], RANGE)),
            (Extent(0, gid, 1), Extent(1, sub_g[0], RANGE)),
            True,
        )
    return IdMaps(
        (Extent(0, uid, 1),),
        (Extent(0, gid, 1),),
        False,
        SINGLE_ID_WARNING.format(user=user),
    )
