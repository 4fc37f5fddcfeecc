"""What one container needs from the runtime: a typed, validated description.

:class:`ContainerConfig` is the engine's input; the CLI and the Python API translate an
image config plus run options into one. It holds host paths (layers, upper dir, bind
sources) and container paths (mount targets, cwd), never anything image-specific.
"""

from __future__ import annotations

import os

from envkit.errors import SpecError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BindMount(tuple[str, str, bool]):
    """A host path (file or directory) shown at ``target`` inside the container.

    An immutable value (a tuple underneath: equal, hashable). The runtime's value
    classes are plain classes, not dataclasses: they are on ``envkit run``'s start-up
    path, where importing :mod:`dataclasses` alone costs several milliseconds.
    """

    __slots__ = ()

    def __new__(cls, source: str, target: str, readonly: bool = False) -> BindMount:
        return tuple.__new__(cls, (source, target, readonly))

    @property
    def source(self) -> str:
        return self[0]

    @property
    def target(self) -> str:
        return self[1]

    @property
    def readonly(self) -> bool:
        return self[2]

    def __repr__(self) -> str:
        return f"BindMount(source={self[0]!r}, target={self[1]!r}, readonly={self[2]!r})"

    @classmethod
    def parse(cls, text: str) -> BindMount:
        """``SRC:DST[:ro|rw]`` as docker's ``-v`` takes it (SRC must be absolute)."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise SpecError("mount", "expected SRC:DST[:ro|rw]", value=text)
        if not parts[0].startswith("/"):
            raise SpecError(
                "mount",
                "the source must be a host path or a volume name",
                value=text,
                hint="give the host path in full (e.g. $PWD/data:/data), or a volume name "
                "(letters, digits, '_', '.', '-')",
            )
        return cls(parts[0], parts[1], readonly=len(parts) == 3 and parts[2] == "ro")


class TmpfsMount(tuple[str, int, int]):
    """A fresh tmpfs at ``target`` (``--tmpfs``); ``size`` in bytes, 0 for the kernel
    default. An immutable value, as :class:`BindMount`."""

    __slots__ = ()

    def __new__(cls, target: str, size: int = 0, mode: int = 0o1777) -> TmpfsMount:
        return tuple.__new__(cls, (target, size, mode))

    @property
    def target(self) -> str:
        return self[0]

    @property
    def size(self) -> int:
        return self[1]

    @property
    def mode(self) -> int:
        return self[2]

    def __repr__(self) -> str:
        return f"TmpfsMount(target={self[0]!r}, size={self[1]!r}, mode={self[2]:#o})"

    #: Options docker's ``--tmpfs`` takes that every envkit tmpfs has anyway.
    IMPLIED = frozenset({"rw", "nosuid", "nodev", "exec"})

    @classmethod
    def parse(cls, text: str) -> TmpfsMount:
        """``PATH[:OPTIONS]`` as docker's ``--tmpfs`` and compose's ``tmpfs:`` take it:
        ``size=`` (``64m``, ``1g``, bytes) and ``mode=`` (octal) are honoured."""
        target, _, options = text.partition(":")
        size, mode = 0, 0o1777
        for option in filter(None, options.split(",")):
            key, eq, value = option.partition("=")
            if key == "size" and eq:
                from envkit.spec import validate  # lazy: only with a size

                size = validate.size("tmpfs", value, what="tmpfs size")
            elif key == "mode" and eq and 0 < len(value) <= 4 and set(value) <= set("01234567"):
                mode = int(value, 8)
            elif option not in cls.IMPLIED:
                raise SpecError(
                    "tmpfs",
                    f"unsupported tmpfs option {option!r}",
                    value=text,
                    hint="envkit's tmpfs is writable, nosuid and nodev; give size=SIZE and "
                    "mode=OCTAL, e.g. /run:size=64m,mode=1770",
                )
        return cls(target, size, mode)


Mount = BindMount | TmpfsMount


class ContainerConfig:
    """Everything the runtime needs to start one container.

    ``layers`` are host directories holding extracted layers, **top first** (overlayfs'
    ``lowerdir`` order); they are never written to. With ``upper_dir`` and ``work_dir``
    (empty directories on the same file system) the root is a writable overlay whose
    changes all land in ``upper_dir``; without them the root is read-only. ``uid``,
    ``gid`` and ``groups`` are container ids; ``stdio`` are host fds given to the command
    as 0, 1 and 2 (``None``: inherit the caller's).

    Other fields: ``die_with_parent`` kills the container when the process that started
    it dies (foreground runs). The command always starts in a session of its own, never
    the caller's (the caller passes signals on: :func:`envkit.runtime.spawn.proxy_signals`).
    ``tty`` gives the command a
    pseudo-terminal from the container's devpts, whose master comes back to the caller as
    :attr:`envkit.runtime.spawn.ContainerProcess.console`; ``tty_size`` is its initial
    ``(rows, columns)``. ``cgroup`` is the host path of a cgroup v2 directory the
    container joins (:mod:`.cgroups`). ``userns`` is a user namespace to *join*
    (``/proc/PID/ns/user``, e.g. of :func:`envkit.network.prepare`'s holder) instead of
    creating one; no id maps are written then, the namespace's own are used, which must
    be ``idmap.plan()``'s. ``on_namespaces`` is called in the caller with the monitor's
    pid once every namespace of the container exists (its network namespace included)
    and before any mount is made or the command runs: envkit connects the container to
    its networks there; bind-mount sources may be created by it and an exception aborts
    the start. ``host_network`` stays in the caller's network namespace (``docker
    build``'s default network for RUN steps): the container sees the host's interfaces
    but, owning no capability over that namespace, cannot change them; no loopback
    set-up, /sys is a bind. ``capabilities``: the command's capability numbers
    (``None``: docker's defaults, :data:`envkit.runtime.caps.DEFAULT`); the seccomp
    filter follows them as Docker's profile says.

    A value object: validated when made, never changed after; :meth:`replace` makes a
    changed copy.
    """

    __slots__ = (
        "argv",
        "capabilities",
        "cgroup",
        "cwd",
        "die_with_parent",
        "env",
        "gid",
        "groups",
        "host_network",
        "hostname",
        "layers",
        "mounts",
        "on_namespaces",
        "readonly_root",
        "seccomp",
        "shm_size",
        "stdio",
        "sysctls",
        "tty",
        "tty_size",
        "uid",
        "ulimits",
        "upper_dir",
        "userns",
        "work_dir",
    )

    def __init__(
        self,
        layers: Sequence[str],
        argv: Sequence[str],
        upper_dir: str | None = None,
        work_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str = "/",
        uid: int = 0,
        gid: int = 0,
        groups: Sequence[int] = (),
        hostname: str = "envkit",
        mounts: Sequence[Mount] = (),
        readonly_root: bool = False,
        stdio: tuple[int, int, int] | None = None,
        die_with_parent: bool = True,
        seccomp: bool = True,
        tty: bool = False,
        tty_size: tuple[int, int] = (0, 0),
        cgroup: str | None = None,
        userns: str | None = None,
        on_namespaces: Callable[[int], None] | None = None,
        host_network: bool = False,
        capabilities: frozenset[int] | None = None,
        shm_size: int = 0,
        ulimits: Sequence[tuple[str, int, int]] = (),
        sysctls: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.layers = layers
        self.argv = argv
        self.upper_dir = upper_dir
        self.work_dir = work_dir
        self.env: Mapping[str, str] = {"PATH": DEFAULT_PATH} if env is None else env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.hostname = hostname
        self.mounts = mounts
        self.readonly_root = readonly_root
        self.stdio = stdio
        self.die_with_parent = die_with_parent
        self.seccomp = seccomp
        self.tty = tty
        self.tty_size = tty_size
        self.cgroup = cgroup
        self.userns = userns
        self.on_namespaces = on_namespaces
        self.host_network = host_network
        self.capabilities = capabilities
        self.shm_size = shm_size
        self.ulimits: tuple[tuple[str, int, int], ...] = tuple(
            (str(name), int(soft), int(hard)) for name, soft, hard in ulimits
        )
        self.sysctls: tuple[tuple[str, str], ...] = tuple(
            (str(name), str(value)) for name, value in sysctls
        )
        self._validate()

    def replace(self, **changes: Any) -> ContainerConfig:
        """A copy with ``changes`` applied (validated again), as ``dataclasses.replace``."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        return ContainerConfig(**{**fields, **changes})

    def __repr__(self) -> str:
        return f"ContainerConfig(argv={list(self.argv)!r}, layers={list(self.layers)!r})"

    #: Fields that stay in the process that made the config: host fds and a callback.
    LOCAL_FIELDS = ("stdio", "on_namespaces", "userns")

    def to_wire(self) -> dict[str, Any]:
        """The config as plain JSON values, for the container monitor
        (:mod:`envkit.container.monitor`) that starts it on the caller's behalf.

        :data:`LOCAL_FIELDS` are left out: fds travel beside the message
        (``SCM_RIGHTS``) and the callback runs in the caller.
        """
        wire: dict[str, Any] = {}
        for name in self.__slots__:
            if name in self.LOCAL_FIELDS:
                continue
            value = getattr(self, name)
            if name == "mounts":
                value = [["bind", *m] if isinstance(m, BindMount) else ["tmpfs", *m] for m in value]
            elif name == "capabilities" and value is not None:
                value = sorted(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif name == "env":
                value = dict(value)
            wire[name] = value
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any], **local: Any) -> ContainerConfig:
        """A config from :meth:`to_wire`'s form (validated again), with ``local``
        (:data:`LOCAL_FIELDS`) given by the receiving process."""
        fields = dict(wire)
        remote = set(cls.__slots__) - set(cls.LOCAL_FIELDS)
        unknown = fields.keys() - remote | local.keys() - set(cls.LOCAL_FIELDS)
        if unknown:
            raise SpecError("config", "unknown fields", value=sorted(unknown))
        fields["mounts"] = [
            BindMount(*m[1:]) if m[0] == "bind" else TmpfsMount(*m[1:])
            for m in fields.get("mounts", ())
        ]
        if "sysctls" in fields:
            fields["sysctls"] = [tuple(pair) for pair in fields["sysctls"]]
        if "ulimits" in fields:
            fields["ulimits"] = [tuple(u) for u in fields["ulimits"]]
        if "tty_size" in fields:
            fields["tty_size"] = tuple(fields["tty_size"])
        if fields.get("capabilities") is not None:
            fields["capabilities"] = frozenset(fields["capabilities"])
        return cls(**fields, **local)

    def _validate(self) -> None:
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
                raise SpecError(
                    "mounts",
                    "target must be an absolute path below /",
                    value=mount.target,
                    hint="mount it at a directory below /, e.g. /data",
                )
            if isinstance(mount, BindMount) and not os.path.isabs(mount.source):
                raise SpecError("mounts", "bind source must be an absolute host path", value=mount)
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                raise SpecError("env", "bad variable name", value=key)
        if (
            isinstance(self.shm_size, bool)
            or not isinstance(self.shm_size, int)
            or self.shm_size < 0
        ):
            raise SpecError("shm_size", "bytes, 0 for docker's 64m", value=self.shm_size)
        if min((self.uid, self.gid, *self.groups)) < 0:
            raise SpecError("uid/gid", "ids must not be negative")
        if self.userns is not None and not os.path.isabs(self.userns):
            raise SpecError("userns", "must be an absolute namespace path", value=self.userns)
        if "\0" in self.hostname or len(self.hostname.encode()) > 64:
            raise SpecError("hostname", "at most 64 bytes", value=self.hostname)


class ExecConfig:
    """A command to run in an existing container (``envkit exec``): the part of a
    :class:`ContainerConfig` that describes one process. A value object, as that one."""

    __slots__ = (
        "argv",
        "capabilities",
        "cwd",
        "env",
        "gid",
        "groups",
        "seccomp",
        "stdio",
        "tty",
        "tty_size",
        "uid",
    )

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str = "/",
        uid: int = 0,
        gid: int = 0,
        groups: Sequence[int] = (),
        stdio: tuple[int, int, int] | None = None,
        tty: bool = False,
        tty_size: tuple[int, int] = (0, 0),
        seccomp: bool = True,
        capabilities: frozenset[int] | None = None,
    ) -> None:
        self.argv = argv
        self.env: Mapping[str, str] = {"PATH": DEFAULT_PATH} if env is None else env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.stdio = stdio
        self.tty = tty
        self.tty_size = tty_size
        self.seccomp = seccomp
        self.capabilities = capabilities
        self._validate()

    def replace(self, **changes: Any) -> ExecConfig:
        """A copy with ``changes`` applied (validated again)."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        return ExecConfig(**{**fields, **changes})

    def _validate(self) -> None:
        if not self.argv or not self.argv[0]:
            raise SpecError("argv", "an empty command cannot be run", value=list(self.argv))
        if not self.cwd.startswith("/"):
            raise SpecError("cwd", "must be an absolute container path", value=self.cwd)
        if min((self.uid, self.gid, *self.groups)) < 0:
            raise SpecError("uid/gid", "ids must not be negative")
