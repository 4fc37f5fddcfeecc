"""The options of ``docker run`` besides the image: :class:`RunOptions`, and the keyword
names that ``envkit.run()`` and :meth:`Container.exec` check at run time."""

from __future__ import annotations

from envkit.errors import SpecError
from envkit.runtime.config import BindMount

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import TextIO

    from typing_extensions import Unpack

    from envkit.container.run_kwargs import RunKwargs
    from envkit.network.attach import PortsSpec
    from envkit.runtime.cgroups import Limits

#: The keys of :class:`envkit.container.run_kwargs.ExecKwargs`, for the run-time check
#: (the TypedDict is for type checkers: ``envkit run`` does not import ``typing``).
EXEC_KEYWORDS = ("env", "workdir", "user", "stdio")

#: The keys of :class:`envkit.container.run_kwargs.RunKwargs`, documented there.
RUN_KEYWORDS = (
    *EXEC_KEYWORDS,
    "entrypoint",
    "volumes",
    "tmpfs",
    "hostname",
    "read_only",
    "name",
    "detach",
    "remove",
    "memory",
    "cpus",
    "pids_limit",
    "network",
    "network_aliases",
    "ports",
    "init",
    "seccomp",
    "cap_add",
    "cap_drop",
    "pull",
    "pull_output",
    "stop_signal",
    "shm_size",
    "ulimits",
    "extra_hosts",
    "sysctls",
)


def check_keywords(function: str, given: Iterable[str], known: tuple[str, ...]) -> None:
    """Raise Python's own ``TypeError`` for a keyword ``function`` does not take (a
    ``**options: Unpack[...]`` signature accepts any name at run time)."""
    for key in given:
        if key not in known:
            raise TypeError(f"{function}() got an unexpected keyword argument {key!r}")


class RunOptions:
    """What ``docker run`` takes besides the image: ``cmd`` and the keywords of
    :class:`envkit.container.run_kwargs.RunKwargs` (as ``envkit.run()`` takes them; each
    keeps its name as an attribute), plus ``tty`` (``-t``: the caller's terminal on a
    pty of the container, for the CLI, which attaches it). Derived: ``limits``
    (:class:`envkit.runtime.cgroups.Limits` from ``memory``, ``cpus``, ``pids_limit``,
    ``None`` without any; parsed here, so a bad size fails before anything is made) and
    ``networks`` (``network`` as a list). ``None`` means "the image's". Not a dataclass:
    this module is on ``envkit run``'s start-up path (see
    :class:`envkit.runtime.config.BindMount`).
    """

    __slots__ = ("cmd", "tty", "limits", "networks", *RUN_KEYWORDS)

    def __init__(
        self,
        cmd: Sequence[str] | None = None,
        *,
        tty: bool = False,
        **options: Unpack[RunKwargs],
    ) -> None:
        check_keywords("RunOptions", options, RUN_KEYWORDS)
        pull = options.get("pull", "missing")
        if pull not in ("missing", "always", "never"):
            from envkit.pulling import check  # lazy: only for a bad policy (its error)

            check(pull, "pull")
        self.cmd = cmd
        self.tty = tty
        self.env: Mapping[str, str] = dict(options.get("env") or {})
        self.workdir = options.get("workdir")
        self.user = options.get("user")
        self.stdio = options.get("stdio")
        self.entrypoint = options.get("entrypoint")
        self.volumes: Sequence[str | BindMount] = options.get("volumes", ())
        self.tmpfs: Sequence[str] = options.get("tmpfs", ())
        self.hostname = options.get("hostname")
        self.read_only = options.get("read_only", False)
        self.name = options.get("name")
        self.detach = options.get("detach", False)
        self.remove = options.get("remove", False)
        self.memory = options.get("memory")
        self.cpus = options.get("cpus")
        self.pids_limit = options.get("pids_limit")
        self.limits = _limits(self.memory, self.cpus, self.pids_limit)
        self.network = options.get("network")
        self.networks = _networks(self.network)
        self.network_aliases: Sequence[str] = options.get("network_aliases", ())
        self.ports: PortsSpec = options.get("ports", ())
        self.init = options.get("init", False)
        self.seccomp = options.get("seccomp", True)
        self.cap_add: Sequence[str] = options.get("cap_add", ())
        self.cap_drop: Sequence[str] = options.get("cap_drop", ())
        self.pull = pull
        self.pull_output: TextIO | None = options.get("pull_output")
        self.shm_size: int = _shm_size(options.get("shm_size"))
        self.ulimits: tuple[tuple[str, int, int], ...] = _ulimits(options.get("ulimits"))
        self.extra_hosts: tuple[tuple[str, str], ...] = _extra_hosts(options.get("extra_hosts"))
        self.sysctls: tuple[tuple[str, str], ...] = _sysctls(options.get("sysctls"))
        self.stop_signal: str | int | None = options.get("stop_signal")
        if self.stop_signal is not None:
            from envkit.spec.signals import number  # lazy: only with a stop signal

            try:
                number(self.stop_signal)
            except ValueError as exc:
                raise SpecError("stop_signal", str(exc), hint="e.g. SIGQUIT, QUIT or 3") from None


def _limits(
    memory: str | int | None, cpus: str | float | None, pids_limit: int | str | None
) -> Limits | None:
    if memory is None and cpus is None and pids_limit is None:
        return None
    from envkit.runtime.cgroups import Limits  # lazy: only with limits (downward)

    return Limits.parse(
        None if memory is None else str(memory),
        None if cpus is None else str(cpus),
        None if pids_limit is None else str(pids_limit),
    )


def _shm_size(value: str | int | None) -> int:
    """Bytes of /dev/shm, 0 for the default."""
    if value is None:
        return 0
    from envkit.spec import validate  # lazy: only with --shm-size

    return validate.size("shm_size", value, what="size of /dev/shm")


def _ulimits(value: Mapping[str, int | tuple[int, int]] | None) -> tuple[tuple[str, int, int], ...]:
    """(name, soft, hard) limits from ``{name: n or (soft, hard)}``."""
    if not value:
        return ()
    from envkit.spec import ulimits  # lazy: only with limits

    return ulimits.parse("ulimits", value)


def _extra_hosts(value: Mapping[str, str] | Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()
    from envkit.spec import hosts  # lazy: only with --add-host

    return hosts.parse("extra_hosts", value)


def _sysctls(value: Mapping[str, str | int] | Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()
    from envkit.spec import sysctls  # lazy: only with --sysctl

    return sysctls.parse("sysctls", value)


def _networks(network: str | Sequence[str] | None) -> list[str]:
    return [network] if isinstance(network, str) else list(network or ())
