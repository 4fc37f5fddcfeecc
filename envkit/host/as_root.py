"""Call a function as root of a new user namespace with the containers' id maps.

Files the function reads or creates are then seen with their container owners: the
host ids that container ids stand for (as root: the subordinate range; rootless: the
caller and its subordinate ids). The build writes run-step layers this way and the
Debian source unpacks its root file systems this way: one code path for root and
rootless callers.

The function runs in a forked child; its JSON-able result comes back to the caller, and
an exception it raises comes back as :class:`ChildError` with the original type's name,
message and hint; except a full or unwritable home, which comes back as the
:class:`~envkit.errors.HomeError` that names it (not as the caller's failure).

Forks are serialised with :data:`FORK_LOCK`: builds run stages in threads, and a child
forked while another thread holds an interpreter lock could deadlock.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence

from envkit.errors import RuntimeError_

#: Held around every fork made while other threads may run (container starts, helpers).
FORK_LOCK = threading.Lock()


class ChildError(RuntimeError_):
    """What the function raised in the child: ``type_name`` is its class's name."""

    def __init__(self, type_name: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.type_name = type_name


def call_as_container_root(fn: Callable[[], object]) -> object:
    """``fn()`` in a child that is root of a new user namespace mapped by ``idmap.plan()``;
    returns its result (JSON-able) or raises :class:`ChildError`."""
    result_r, result_w = os.pipe()

    def body() -> int:
        os.write(result_w, json.dumps({"ok": fn()}).encode())
        return 0

    def fail(exc: BaseException) -> int:
        if isinstance(exc, OSError):
            # A full or unwritable home is the home's matter, whatever the caller was
            # doing in the child (writing a layer): it comes back as that HomeError.
            from envkit.settings import storage_error

            exc = storage_error(exc) or exc
        report = {
            "type": type(exc).__name__,
            "message": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
            "hint": getattr(exc, "hint", None),
        }
        os.write(result_w, json.dumps(report).encode())
        return 1

    try:
        pid = _fork_as_container_root(body, fail, close=result_r)
    except BaseException:
        os.close(result_r)
        raise
    finally:
        os.close(result_w)
    chunks = []
    try:
        while chunk := os.read(result_r, 65536):
            chunks.append(chunk)
    finally:
        os.close(result_r)
        _, status = os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks) or b"{}")
    if os.waitstatus_to_exitcode(status) == 0 and "ok" in report:
        return report["ok"]
    if report.get("type") == "HomeError":
        from envkit.errors import HomeError

        raise HomeError(str(report["message"]), hint=report.get("hint"))
    raise ChildError(
        str(report.get("type", "")),
        str(report.get("message", "the helper process died")),
        hint=report.get("hint"),
    )


def subordinate_owners() -> bool:
    """Whether files of container users belong to subordinate ids this process may
    neither read (when private) nor chown: rootless with subordinate ids. As root, or
    under a single-id map, every such file is within reach."""
    from envkit.host import idmap

    return os.geteuid() != 0 and idmap.plan().use_helpers


def with_container_owners(fn: Callable[[], object], error: Callable[..., Exception]) -> object:
    """``fn()`` where files of container users are within reach: in this process, or,
    when :func:`subordinate_owners`, as root of the containers' user namespace (the
    result then comes back JSON-decoded: tuples as lists). A failure there is raised as
    ``error(message, hint=hint)`` with the child's message and hint."""
    if not subordinate_owners():
        return fn()
    try:
        return call_as_container_root(fn)
    except ChildError as exc:
        raise error(exc.message, hint=exc.hint) from None


def run_as_container_root(argv: Sequence[str]) -> int:
    """Run ``argv`` (searched on PATH) as root of a new user namespace mapped by
    ``idmap.plan()``, as ``podman unshare`` does; its exit code (128+N on signal N, 127
    when it cannot be run). Files of container users show with their container owners
    there, so they can be listed, changed or removed."""
    import signal

    def body() -> int:
        os.execvp(argv[0], list(argv))

    def fail(exc: BaseException) -> int:
        os.write(2, f"envkit: error: {argv[0]}: {getattr(exc, 'strerror', None) or exc}\n".encode())
        return 127 if isinstance(exc, FileNotFoundError) else 1

    pid = _fork_as_container_root(body, fail)
    # The terminal's Ctrl-C and Ctrl-\ are the command's to handle, as with os.system.
    previous = [signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGQUIT)]
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in zip((signal.SIGINT, signal.SIGQUIT), previous, strict=True):
            signal.signal(sig, handler)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _fork_as_container_root(
    body: Callable[[], int], fail: Callable[[BaseException], int], close: int | None = None
) -> int:
    """Fork a child that becomes root of a new user namespace mapped by ``idmap.plan()``
    (umask 022) and exits with ``body()``, or with ``fail(exc)`` when anything raises;
    its pid, once its maps are written. ``close``: an fd the child does not keep."""
    from envkit.host import idmap, syscalls

    maps = idmap.plan()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    with FORK_LOCK:
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            for fd in (ready_r, go_w, close):
                if fd is not None:
                    os.close(fd)
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            if os.read(go_r, 1) == b"g":
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
                os.umask(0o022)
                code = body()
        except BaseException as exc:
            code = fail(exc)
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(go_r)
    going = False
    try:
        if os.read(ready_r, 1) == b"u":
            maps.write(pid)
            os.write(go_w, b"g")
        going = True
    finally:
        os.close(ready_r)
        os.close(go_w)  # without "g" the child gives up
        if not going:
            os.waitpid(pid, 0)
    return pid
