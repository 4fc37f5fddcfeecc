"""What one container needs from the runtime: a typed, validated description.

:class:`ContainerConfig` is the engine's input; the CLI and the Python API translate an
image config plus run options into one. It holds host paths (layers, upper dir, bind
sources) and container paths (mount targets, cwd), never anything image-specific.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from envkit.errors import SpecError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BindMount:
    """A host path (file or directory) shown at ``target`` inside the container."""

    source: str
    target: str
    readonly: bool = False

    @classmethod
    def parse(cls, text: str) -> BindMount:
        """``SRC:DST[:ro|rw]`` as docker's ``-v`` takes it (SRC must be absolute)."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise SpecError("mount", "expected SRC:DST[:ro|rw]", value=text)
        return cls(parts[0], parts[1], readonly=len(parts) == 3 and parts[2] == "ro")


@dataclass(frozen=True)
class TmpfsMount:
    """A fresh tmpfs at ``target`` (``--tmpfs``); ``size`` in bytes, 0 for the kernel default."""

    target: str
    size: int = 0
    mode: int = 0o1777


Mount = BindMount | TmpfsMount


@dataclass(frozen=True)
class ContainerConfig:
    """Everything the runtime needs to start one container.

    ``layers`` are host directories holding extracted layers, **top first** (overlayfs'
    ``lowerdir`` order); they are never written to. With ``upper_dir`` and ``work_dir``
    (empty directories on the same file system) the root is a writable overlay whose
    changes all land in ``upper_dir``; without them the root is read-only. ``uid``,
    ``gid`` and ``groups`` are container ids; ``stdio`` are host fds given to the command
    as 0, 1 and 2 (``None``: inherit the caller's).
    """

    layers: Sequence[str]
    argv: Sequence[str]
    upper_dir: str | None = None
    work_dir: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: {"PATH": DEFAULT_PATH})
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: Sequence[int] = ()
    hostname: str = "envkit"
    mounts: Sequence[Mount] = ()
    readonly_root: bool = False
    stdio: tuple[int, int, int] | None = None
    #: Kill the container when the process that started it dies (foreground runs).
    die_with_parent: bool = True
    #: Give the command its own session (detached containers); foreground runs keep the
    #: caller's process group so that the terminal's Ctrl-C and job control reach it.
    new_session: bool = False
    seccomp: bool = True
    #: Give the command a pseudo-terminal from the container's devpts; its master comes
    #: back to the caller as :attr:`envkit.runtime.spawn.Container.console`.
    tty: bool = False
    #: The terminal's initial ``(rows, columns)``, set before the command starts.
    tty_size: tuple[int, int] = (0, 0)
    #: Host path of a cgroup v2 directory the container joins (:mod:`.cgroups`).
    cgroup: str | None = None
    #: A user namespace to *join* (``/proc/PID/ns/user``, e.g. of
    #: :func:`envkit.network.prepare`'s holder) instead of creating one. No id maps are
    #: written then: the namespace's own are used, which must be ``idmap.plan()``'s.
    userns: str | None = None
    #: Called in the caller with the monitor's pid once every namespace of the container
    #: exists (its network namespace included) and before any mount is made or the
    #: command runs: envkit connects the container to its networks there. Bind-mount
    #: sources may be created by it. An exception aborts the start.
    on_namespaces: Callable[[int], None] | None = field(default=None, compare=False)
    #: Stay in the caller's network namespace (``docker build``'s default network for
    #: RUN steps): the container sees the host's interfaces but, owning no capability
    #: over that namespace, cannot change them. No loopback set-up, /sys is a bind.
    host_network: bool = False

    def __post_init__(self) -> None:
        if not self.layers:
            raise SpecError("layers", "at least one layer directory is needed")
        if not self.argv or not self.argv[0]:
            raise SpecError("argv", "an empty command cannot be run", value=list(self.argv))
        if (self.upper_dir is None) != (self.work_dir is None):
            raise SpecError(
                "upper_dir/work_dir",
                "give both or neither",
                hint="overlayfs needs a work dir beside the upper dir, on the same file system",
            )
        for name, path in [("layers", p) for p in self.layers] + [
            ("upper_dir", self.upper_dir),
            ("work_dir", self.work_dir),
        ]:
            if path is not None and not os.path.isabs(path):
                raise SpecError(name, "must be an absolute host path", value=path)
        if not self.cwd.startswith("/"):
            raise SpecError("cwd", "must be an absolute container path", value=self.cwd)
        for mount in self.mounts:
            if not mount.target.startswith("/") or mount.target.rstrip("/") == "":
                raise SpecError("mounts", "target must be an absolute path below /", value=mount)
            if isinstance(mount, BindMount) and not os.path.isabs(mount.source):
                raise SpecError("mounts", "bind source must be an absolute host path", value=mount)
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                raise SpecError("env", "bad variable name", value=key)
        if min((self.uid, self.gid, *self.groups)) < 0:
            raise SpecError("uid/gid", "ids must not be negative")
        if self.userns is not None and not os.path.isabs(self.userns):
            raise SpecError("userns", "must be an absolute namespace path", value=self.userns)
        if "\0" in self.hostname or len(self.hostname.encode()) > 64:
            raise SpecError("hostname", "at most 64 bytes", value=self.hostname)


@dataclass(frozen=True)
class ExecConfig:
    """A command to run in an existing container (``envkit exec``): the part of a
    :class:`ContainerConfig` that describes one process."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=lambda: {"PATH": DEFAULT_PATH})
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: Sequence[int] = ()
    stdio: tuple[int, int, int] | None = None
    tty: bool = False
    tty_size: tuple[int, int] = (0, 0)
    seccomp: bool = True
    new_session: bool = False

    def __post_init__(self) -> None:
        if not self.argv or not self.argv[0]:
            raise SpecError("argv", "an empty command cannot be run", value=list(self.argv))
        if not self.cwd.startswith("/"):
            raise SpecError("cwd", "must be an absolute container path", value=self.cwd)
        if min((self.uid, self.gid, *self.groups)) < 0:
            raise SpecError("uid/gid", "ids must not be negative")
