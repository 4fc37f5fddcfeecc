"""Run a function as root of a user namespace with the containers' id maps.

Files it creates then belong to the host ids that container ids stand for (as root: the
subordinate range; rootless: the caller and its subordinate ids), so a root file system
unpacked this way can be a container's overlay upper dir and keep owners like
``root:shadow``. The function runs in a forked child; an :class:`EnvkitError` it raises
is raised again in the caller with its message and hint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from envkit.sources.debian import errors
from envkit.sources.debian.errors import BootstrapError, DebianError


def call_as_container_root(fn: Callable[[], None], what: str) -> None:
    """Call ``fn`` in a child process that is root of a new user namespace."""
    from envkit.build.upper_layer import FORK_LOCK
    from envkit.runtime import idmap, syscalls

    maps = idmap.plan()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    result_r, result_w = os.pipe()
    with FORK_LOCK:
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            for fd in (ready_r, go_w, result_r):
                os.close(fd)
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            if os.read(go_r, 1) == b"g":
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
                os.umask(0o022)
                fn()
                code = 0
        except BaseException as exc:
            body = {
                "type": type(exc).__name__,
                "message": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                "hint": getattr(exc, "hint", None),
                "debian": isinstance(exc, DebianError),
            }
            os.write(result_w, json.dumps(body).encode())
        finally:
            os._exit(code)
    for fd in (ready_w, go_r, result_w):
        os.close(fd)
    try:
        if os.read(ready_r, 1) == b"u":
            maps.write(pid)
            os.write(go_w, b"g")
    finally:
        os.close(ready_r)
        os.close(go_w)
        chunks = []
        while chunk := os.read(result_r, 65536):
            chunks.append(chunk)
        os.close(result_r)
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return
    report = json.loads(b"".join(chunks) or b"{}")
    message = f"{what}: {report.get('message', 'the helper process died')}"
    hint = report.get("hint") or "ENVKIT_DEBUG=1 shows more; `envkit doctor` checks user namespaces"
    kind = getattr(errors, str(report.get("type")), None)
    if report.get("debian") and isinstance(kind, type) and issubclass(kind, DebianError):
        raise kind(message, hint=hint)
    raise BootstrapError(message, hint=hint)
