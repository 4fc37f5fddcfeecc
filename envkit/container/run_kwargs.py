"""The keyword options of ``envkit.run()`` and :meth:`Container.exec`, typed once:
:class:`RunKwargs` and :class:`ExecKwargs` (``TypedDict``, PEP 692).

``envkit.run(image, cmd=None, **options: Unpack[RunKwargs])``, ``RunOptions(cmd,
**options)`` and ``Container.exec(cmd, **options: Unpack[ExecKwargs])`` take these
keys; a type checker checks each call against them, and a dict of options can be
annotated with them::

    from envkit.container.run_kwargs import RunKwargs

    web: RunKwargs = {"name": "web", "ports": {0: 80}, "detach": True}
    envkit.run("nginx:1", **web)

Only type checkers and callers import this module: the code that runs containers names
it under ``TYPE_CHECKING`` (it costs ``typing``, which ``envkit run`` does not load) and
checks keywords at run time against :data:`envkit.container.options.RUN_KEYWORDS` and
``EXEC_KEYWORDS``; ``tests/unit/container/test_run_options.py`` checks that they agree key for key.
"""

from __future__ import annotations

from typing_extensions import TypedDict

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TextIO

    from envkit.network.attach import PortsSpec
    from envkit.runtime.config import BindMount


class ExecKwargs(TypedDict, total=False):
    """The keyword options of :meth:`Container.exec` (``docker exec``'s), which
    ``envkit.run()`` takes too (there for the container's command)."""

    env: Mapping[str, str] | None
    """Variables set over the image's (exec: over the container's) (``-e K=V``)."""

    workdir: str | None
    """The working directory, absolute (``-w``; run: created when missing). Default: the
    image's (exec: the container's)."""

    user: str | None
    """``USER[:GROUP]``, names or ids (``-u``). Default: the image's (exec: the
    container's)."""

    stdio: tuple[int, int, int] | None
    """Host fds for the command's stdin, stdout and stderr. ``None`` (default): run
    captures stdout and stderr into the container's log (:meth:`Container.logs`), stdin is
    /dev/null; exec returns them as its output."""


class RunKwargs(ExecKwargs, total=False):
    """The keyword options of ``envkit.run()`` (``docker run``'s) besides the image and
    the command; each is the image's or docker's default when left out."""

    entrypoint: Sequence[str] | None
    """Replaces the image's Entrypoint and clears its Cmd (``--entrypoint``); ``[]``
    removes it."""

    volumes: Sequence[str | BindMount]
    """Bind mounts: ``"SRC:DST[:ro]"`` strings (an absolute host path that exists) or
    :class:`envkit.runtime.config.BindMount` (``-v``)."""

    tmpfs: Sequence[str]
    """Container paths that each get a fresh tmpfs (``--tmpfs``): ``PATH`` or
    ``PATH:OPTIONS`` with docker's ``size=64m`` and ``mode=1770`` (``rw``, ``nosuid``,
    ``nodev``, ``exec`` are accepted: every tmpfs is so; others are refused)."""

    shm_size: str | int | None
    """The size of ``/dev/shm`` (``--shm-size``): ``"1g"``, ``"256m"`` or bytes.
    Default: docker's 64m."""

    extra_hosts: Mapping[str, str] | Sequence[str]
    """Lines of the container's /etc/hosts (``--add-host NAME:IP``, compose's
    ``extra_hosts``): ``["db:10.0.0.5"]`` or ``{"db": "10.0.0.5"}``; ``host-gateway``
    is the host's loopback, on a network made with ``host_loopback``. Needs a network."""

    sysctls: Mapping[str, str | int] | Sequence[str]
    """Kernel parameters of the container's own namespaces (``--sysctl NAME=VALUE``):
    ``net.*``, ``fs.mqueue.*`` and the IPC ``kernel.msg*``/``sem``/``shm*`` ones, as
    runc allows them; set before the command starts."""

    ulimits: Mapping[str, int | tuple[int, int]]
    """Resource limits of the container's processes (``--ulimit``): docker's names
    (``nofile``, ``nproc``, ``core``, ...) to a number or ``(soft, hard)``; ``-1`` is
    unlimited. Raising a hard limit needs root (rootless: refused, naming the limit)."""

    hostname: str | None
    """The container's hostname (``--hostname``). Default: the first 12 hex digits of its
    id."""

    read_only: bool
    """Mount the root file system read-only (``--read-only``); tmpfs and volumes stay
    writable."""

    name: str | None
    """A unique name, letters, digits and ``_.-`` (``--name``). Default: a generated
    ``adjective_scientist``."""

    detach: bool
    """Hand the container to this home's monitor, which holds it after this process exits
    (``-d``); otherwise it belongs to the caller and dies with it."""

    remove: bool
    """Delete the container when it exits (``--rm``); otherwise it stays ``exited`` until
    :meth:`Container.remove`."""

    memory: str | int | None
    """A memory limit, ``"256m"``, ``"1g"`` or bytes (``-m``); needs a delegated cgroup v2
    subtree, refused otherwise."""

    cpus: str | float | None
    """A CPU limit, e.g. ``0.5`` (``--cpus``); needs a delegated cgroup v2 subtree."""

    pids_limit: int | str | None
    """At most this many processes, ``-1``: no limit (``--pids-limit``); needs a
    delegated cgroup v2 subtree."""

    network: str | Sequence[str] | None
    """The network or networks to join (``--network``; the first gives the default route;
    ``"none"``: loopback only, the default without ``ports``)."""

    network_aliases: Sequence[str]
    """More names the container is found by on its networks (``--network-alias``)."""

    ports: PortsSpec
    """Published ports: ``{host: container}`` on 127.0.0.1 or ``-p`` strings
    (``[IP:]HOST:CONTAINER[/udp]``); host port 0 picks a free one
    (:meth:`Container.port`). Without ``network``, joins the default network ``envkit``."""

    init: bool
    """A small init as pid 1 in front of the command, which passes signals on and reaps
    zombies (``--init``; :func:`envkit.runtime.init.find_init`)."""

    seccomp: bool
    """``False``: no seccomp filter (``--security-opt seccomp=unconfined``; weakens
    isolation). Default: Docker's default profile."""

    cap_add: Sequence[str]
    """Capabilities added to docker's defaults (``--cap-add``; ``ALL`` for all); the
    seccomp filter follows them."""

    cap_drop: Sequence[str]
    """Capabilities dropped from docker's defaults (``--cap-drop``), before the adds."""

    pull: str
    """When to pull the image from its registry (``--pull``): ``"missing"`` (default,
    when it is not in the store), ``"always"``, ``"never"`` (:mod:`envkit.pulling`)."""

    pull_output: TextIO | None
    """Where docker's pull lines go (e.g. ``sys.stderr``). Default ``None``: a pull is
    silent."""

    stop_signal: str | int | None
    """The signal :meth:`Container.stop` sends first (``--stop-signal``): a name
    (``"SIGQUIT"``, ``"QUIT"``) or number. Default: the image's ``StopSignal``, else
    SIGTERM."""
