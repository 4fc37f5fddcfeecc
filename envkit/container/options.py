"""The options of ``docker run`` besides the image: :class:`RunOptions`."""

from __future__ import annotations

from envkit.runtime.config import BindMount

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TextIO

    from envkit.network.attach import PortsSpec
    from envkit.runtime.cgroups import Limits


class RunOptions:
    """What ``docker run`` takes besides the image; ``None`` means "the image's".

    ``stdio``: host fds for the command's 0, 1, 2 (``None``: captured into the
    container's log). ``networks``: networks to join (``--network``; ``["none"]``:
    loopback only); empty means none, unless ``ports`` are published, which joins the
    default network ``envkit``. ``ports``: ``{host: container}`` or ``-p`` strings
    (``[IP:]HOST:CONTAINER[/udp]``). ``init``: a small init as pid 1 in front of the
    command (``--init``; :func:`envkit.runtime.init.find_init`). ``seccomp=False``: no
    seccomp filter (``--security-opt seccomp=unconfined``). ``cap_add``/``cap_drop``:
    capability names added to or dropped from docker's defaults (``--cap-add``,
    ``--cap-drop``; ``ALL`` for all); the seccomp filter follows them. ``pull``: docker's
    ``--pull`` policy for an image that is not in the store (``missing``, ``always``,
    ``never``; :mod:`envkit.pulling`), with docker's pull lines on ``pull_output``
    (``None``: silent). Not a dataclass: this module is on ``envkit run``'s start-up
    path (see :class:`envkit.runtime.config.BindMount`).
    """

    __slots__ = (
        "cap_add",
        "cap_drop",
        "cmd",
        "entrypoint",
        "env",
        "hostname",
        "init",
        "limits",
        "name",
        "network_aliases",
        "networks",
        "ports",
        "pull",
        "pull_output",
        "read_only",
        "remove",
        "seccomp",
        "stdio",
        "tmpfs",
        "tty",
        "user",
        "volumes",
        "workdir",
    )

    def __init__(
        self,
        cmd: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        volumes: Sequence[str | BindMount] = (),
        tmpfs: Sequence[str] = (),
        workdir: str | None = None,
        user: str | None = None,
        hostname: str | None = None,
        read_only: bool = False,
        name: str | None = None,
        stdio: tuple[int, int, int] | None = None,
        remove: bool = False,
        tty: bool = False,
        limits: Limits | None = None,
        networks: Sequence[str] = (),
        network_aliases: Sequence[str] = (),
        ports: PortsSpec = (),
        init: bool = False,
        seccomp: bool = True,
        cap_add: Sequence[str] = (),
        cap_drop: Sequence[str] = (),
        pull: str = "missing",
        pull_output: TextIO | None = None,
    ) -> None:
        if pull not in ("missing", "always", "never"):
            from envkit.pulling import check  # lazy: only for a bad policy (its error)

            check(pull, "pull")
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.env: Mapping[str, str] = {} if env is None else env
        self.volumes = volumes
        self.tmpfs = tmpfs
        self.workdir = workdir
        self.user = user
        self.hostname = hostname
        self.read_only = read_only
        self.name = name
        self.stdio = stdio
        self.remove = remove
        self.tty = tty
        self.limits = limits
        self.networks = networks
        self.network_aliases = network_aliases
        self.ports = ports
        self.init = init
        self.seccomp = seccomp
        self.cap_add = cap_add
        self.cap_drop = cap_drop
        self.pull = pull
        self.pull_output = pull_output
