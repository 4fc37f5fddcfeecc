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

from envkit.errors import RuntimeError_, UnmappedIdError

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


#: What an unmapped id shows as inside a user namespace (/proc/sys/kernel/overflowuid).
OVERFLOW_ID = 65534


class Extent:
    """``count`` ids from ``inside`` map to ``outside`` on the host (one map line).

    The classes here are not dataclasses: they are on ``envkit run``'s start-up path
    (see :class:`envkit.runtime.config.BindMount`).
    """

    __slots__ = ("count", "inside", "outside")

    def __init__(self, inside: int, outside: int, count: int) -> None:
        self.inside, self.outside, self.count = inside, outside, count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Extent):
            return NotImplemented
        return (self.inside, self.outside, self.count) == (other.inside, other.outside, other.count)

    def __hash__(self) -> int:
        return hash((self.inside, self.outside, self.count))

    def __repr__(self) -> str:
        return f"Extent({self.inside}, {self.outside}, {self.count})"


class IdMaps:
    """The uid and gid maps of one container, and how to write them.

    ``use_helpers``: write through newuidmap/newgidmap (setuid helpers) rather than /proc
    directly. ``warning`` is set when the maps limit what runs inside (the single-id
    fallback).
    """

    __slots__ = ("gids", "uids", "use_helpers", "warning")

    def __init__(
        self,
        uids: tuple[Extent, ...],
        gids: tuple[Extent, ...],
        use_helpers: bool,
        warning: str = "",
    ) -> None:
        self.uids, self.gids, self.use_helpers, self.warning = uids, gids, use_helpers, warning

    def __repr__(self) -> str:
        return f"IdMaps(uids={self.uids}, gids={self.gids}, use_helpers={self.use_helpers})"

    @property
    def single_id(self) -> bool:
        return len(self.uids) == 1 and self.uids[0].count == 1

    def to_host_uid(self, uid: int) -> int:
        """The host uid that container ``uid`` is; :class:`UnmappedIdError` if unmapped."""
        return _to_host(self.uids, uid, "uid")

    def to_host_gid(self, gid: int) -> int:
        """The host gid that container ``gid`` is; :class:`UnmappedIdError` if unmapped."""
        return _to_host(self.gids, gid, "gid")

    def to_container_uid(self, uid: int) -> int:
        """The container uid that host ``uid`` is; 65534 (the kernel's overflow id,
        "nobody") when it is not mapped."""
        return _to_container(self.uids, uid)

    def to_container_gid(self, gid: int) -> int:
        """The container gid that host ``gid`` is; 65534 when it is not mapped."""
        return _to_container(self.gids, gid)

    def write(self, pid: int) -> None:
        """Install both maps on the process ``pid`` that just unshared its user namespace."""
        if self.use_helpers:
            # Both helpers at once, through posix_spawn: subprocess costs milliseconds to
            # import, and this is on every rootless start.
            running = [
                (pid, *_spawn_helper(tool, pid, extents))
                for tool, extents in (("newuidmap", self.uids), ("newgidmap", self.gids))
            ]
            failures = [f for f in (_finish_helper(*r) for r in running) if f]
            if failures:
                raise RuntimeError_(
                    "; ".join(failures),
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


def _spawn_helper(tool: str, pid: int, extents: tuple[Extent, ...]) -> tuple[str, int, int]:
    """Start ``tool PID inside outside count...`` with stderr to a pipe."""
    argv = [tool, str(pid)]
    for e in extents:
        argv += [str(e.inside), str(e.outside), str(e.count)]
    err_r, err_w = os.pipe()
    try:
        child = os.posix_spawnp(
            tool,
            argv,
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, err_w, 2), (os.POSIX_SPAWN_CLOSE, err_r)],
        )
    except OSError as exc:
        os.close(err_r)
        raise RuntimeError_(
            f"cannot run {tool}: {exc.strerror}", hint="apt-get install uidmap"
        ) from None
    finally:
        os.close(err_w)
    return tool, child, err_r


def _finish_helper(pid: int, tool: str, child: int, err_r: int) -> str:
    """Wait for a helper of :func:`_spawn_helper`; ``""`` or what went wrong."""
    with os.fdopen(err_r, "rb") as err:
        message = err.read().decode(errors="replace").strip()
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return "" if code == 0 else f"{tool} {pid} failed: {message or code}"


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _lines(extents: tuple[Extent, ...]) -> str:
    return "".join(f"{e.inside} {e.outside} {e.count}\n" for e in extents)


def _to_host(extents: tuple[Extent, ...], cid: int, kind: str) -> int:
    for e in extents:
        if e.inside <= cid < e.inside + e.count:
            return e.outside + cid - e.inside
    raise UnmappedIdError(
        f"container {kind} {cid} has no host {kind} in this user namespace",
        hint=f"grant a subordinate range (usermod --add-subuids/--add-subgids) or run as {kind} 0",
    )


def _to_container(extents: tuple[Extent, ...], host: int) -> int:
    for e in extents:
        if e.outside <= host < e.outside + e.count:
            return e.inside + host - e.outside
    return OVERFLOW_ID


def _on_path(tool: str) -> bool:
    # Not shutil.which: shutil imports bz2 and lzma, milliseconds on the start-up path.
    return any(os.access(os.path.join(d, tool), os.X_OK) for d in os.get_exec_path())


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
    helpers = _on_path("newuidmap") and _on_path("newgidmap")
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
