"""Start envkit's long-lived processes: a fresh interpreter running one module, detached.

The container monitor, the network daemon and a stack's supervisor start this way. They
are exec'd, not forked from the command that needs them:

- a fresh interpreter holds only what the daemon imports, where a forked copy of ``up``
  kept everything ``up`` had loaded (the build, the registry client, the user's stack
  file) for the stack's whole life: 17 MB of a 10-service stack's 42;
- nothing of the caller's is inherited but the descriptors named in ``fds``: not its
  memory (which may have held secret values), not its other files or its locks;
- a forked child of a process with threads must not import (see
  :mod:`envkit.host.forking`), and a daemon imports as it goes.

The daemon is nobody's child (a middle process spawns it and exits at once, so no caller
has to reap it), in a session of its own (Ctrl-C or a closing terminal does not reach
it), with its working directory at ``/`` and stdin and stdout on ``/dev/null``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys

from envkit.errors import RuntimeError_
from envkit.host.forking import FORK_LOCK

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any


def spawn_module(
    module: str,
    args: Sequence[str] = (),
    *,
    fds: Mapping[int, int] | None = None,
    stderr: str | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Start ``python -m module *args`` detached; return once it was spawned.

    ``fds`` maps the daemon's descriptor numbers to the caller's (``{3: status_w}``; 0,
    1 and 2 may be mapped too); ``stderr`` is a file its stderr appends to (else
    ``/dev/null``); ``env`` the environment (else the caller's). The daemon finds this
    envkit package whatever the caller's ``sys.path`` was. The caller holds
    :data:`~envkit.host.forking.FORK_LOCK` from creating the descriptors in ``fds`` until
    it has closed its copies of the daemon's ends, so no other fork inherits them.
    """
    environment = dict(os.environ if env is None else env)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = package_root + (os.pathsep + path if path else "")
    environment.pop("PYTHONPROFILEIMPORTTIME", None)  # a profiling caller's, not ours
    argv = [sys.executable, "-m", module, *args]
    log = stderr or os.devnull
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
    ]
    with FORK_LOCK:
        middle = os.fork()
        if middle == 0:  # pragma: no cover - exits at once, so the daemon is nobody's child
            code = 0
            try:
                os.chdir("/")
                # Out of the way of 0-2 and of each other first (a caller with stdin
                # closed gets pipes numbered 0); dup2 onto a number clears close-on-exec.
                keep = set()
                for target, source in (fds or {}).items():
                    high = fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, 100)
                    keep.add(high)
                    actions.append((os.POSIX_SPAWN_DUP2, high, target))
                # posix_spawn passes on every inheritable fd: none of the caller's may.
                for entry in os.listdir("/proc/self/fd"):
                    if int(entry) > 2 and int(entry) not in keep:
                        with contextlib.suppress(OSError):
                            os.close(int(entry))
                os.posix_spawn(sys.executable, argv, environment, setsid=True, file_actions=actions)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
    _, status = os.waitpid(middle, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError_(
            f"cannot start {module}: spawning {sys.executable} failed",
            hint="check that the Python interpreter envkit runs with is still installed",
        )
