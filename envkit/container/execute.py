"""``docker exec``: a command in a running container (:func:`start_exec`)."""

from __future__ import annotations

from envkit.container.prepare import layers_of, terminal_size
from envkit.errors import RuntimeError_
from envkit.runtime import image_config
from envkit.runtime import state as st

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from envkit.runtime.nsexec import ExecProcess


def start_exec(
    record: st.ContainerState,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    stdio: tuple[int, int, int] | None = None,
    tty: bool = False,
) -> ExecProcess:
    """Start ``cmd`` in a running container as ``docker exec``: the container's env,
    working dir and user unless overridden; returns an
    :class:`envkit.runtime.nsexec.ExecProcess`."""
    # lazy: only exec needs these, not run (downward)
    from envkit.runtime import nsexec
    from envkit.runtime.config import ExecConfig

    if not record.running:
        raise RuntimeError_(
            f"container {record.name} is not running",
            hint="`envkit ps -a` shows its state; start a new one with `envkit run`",
        )
    uid, gid, groups = record.uid, record.gid, record.groups
    if user is not None:
        layers = layers_of(record)
        who = image_config.resolve_user(
            user,
            image_config.read_image_file(layers, "/etc/passwd"),
            image_config.read_image_file(layers, "/etc/group"),
        )
        uid, gid, groups = who.uid, who.gid, list(who.groups)
    config = ExecConfig(
        argv=list(cmd),
        env={**record.env, **(env or {})},
        cwd=workdir or record.cwd,
        uid=uid,
        gid=gid,
        groups=groups,
        stdio=stdio,
        tty=tty,
        tty_size=terminal_size() if tty else (0, 0),
        seccomp=record.seccomp,  # docker exec: the container's profile and capabilities
        capabilities=None if record.capabilities is None else frozenset(record.capabilities),
    )
    return nsexec.start(record.pid, config)
