"""Run a function in a forked child and get its answer back: the one way envkit does it.

envkit forks for work that must not happen in the caller's process: joining a user
namespace (only a single-threaded process may, and a fresh child is one), unsharing a
mount namespace for a probe, becoming root of the containers' user namespace to read
their files. Two calls cover every such site:

- :func:`call_in_child` runs ``fn(*args)`` in a child and returns what it returned;
- :func:`start_child` runs ``fn(*args)`` in a child that goes on as a command (``fn``
  execs) and returns the child's pid once it exec'd.

Both take ``setup`` (run in the child first) and ``parent_step`` (run in the parent with
the child's pid while the child waits): the handshake of a child that unshares its user
namespace and waits for the parent to write its id maps.

**One result channel.** A pipe (close-on-exec) on which the child writes one JSON
document before it exits: ``{"ok": value}`` or ``{"error": {...}}``. Values are plain
(``None``, numbers, strings, lists, dicts with string keys; tuples come back as lists);
anything else is reported as the child's ``TypeError``. JSON rather than :mod:`marshal`:
a child that joined a container's namespaces can be reached from inside the container,
and the ``marshal`` documentation warns against loading data from such a source; JSON is
also already imported on every start path that forks (container state records, network
state), so it costs nothing there, and a write or read of an answer takes microseconds.

**One error conversion.** An :class:`~envkit.errors.EnvkitError` the child raises comes
back as the same class with its message, hint and plain attributes (a full home in the
child is the caller's :class:`~envkit.errors.HomeError`, a ``NetworkError`` stays one).
Any other exception comes back as :class:`ChildError` with its class name, its message
(for an ``OSError``: strerror and file name, and ``errno``), and, with
``ENVKIT_DEBUG=1``, the child's traceback. A child that exits or is killed without an
answer is :class:`ChildDied` naming its exit status or signal; one that gives no answer
within ``timeout`` seconds is killed and reported as :class:`ChildTimeout`. Callers turn
these into their own domain's error (``NetworkError``, ``BuildError``...) where they
add context.

**One lock policy.** :data:`FORK_LOCK`, used by every fork in envkit (but a fork in a
forked child: it has one thread):

1. It is held from creating the fds a child is to inherit until the parent has closed
   its copies of the child's ends, and ``os.fork()`` happens under it. Without it a fork
   made meanwhile by another thread (a build runs stages in threads; the stack monitor
   probes readiness while it starts services) inherits the write end of this child's
   answer pipe, and the parent waits for EOF until *that* child exits: for a container
   monitor, as long as the container runs. It also keeps two forks from each getting
   the other's half-made pipes.
2. It is reentrant (an ``RLock``): a container start made under it (a build's run step)
   makes its shared user namespace through this module again, in the same thread.
3. A child re-initialises it when another thread held it at fork time
   (``os.register_at_fork``): a child has only the thread that forked, so that lock
   would never be released there. Held by the forking thread, it stays held, and the
   child's code releases it on leaving its ``with`` block as the parent does.
4. The child imports nothing. CPython holds the global import lock across ``fork()``,
   but not the per-module locks: a module that another thread was importing at that
   moment stays locked forever in the child, and importing it there hangs. So what a
   child runs is imported in the parent before the fork (module-level imports of the
   caller; this module imports ``traceback`` first when ``ENVKIT_DEBUG`` asks for one).
5. The parent's ends are close-on-exec, so children that exec (containers, tools) never
   keep them.

Before this module there were two locks, a ``threading.Lock`` in ``as_root`` (not
reentrant, and ``threading`` costs an import on the start path) and the user-namespace
cache's own, while the readiness probe took none; and five encodings of the answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from _thread import RLock

from envkit.errors import ChildDied, ChildError, ChildTimeout, EnvkitError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn, TypeVar

    T = TypeVar("T")

#: Held around every fork in envkit (see the module docstring for the rule).
FORK_LOCK = RLock()


def _reinit_lock_in_child() -> None:
    # Held by the thread that forked (the child's only thread): the child's code leaves
    # its with-block as the parent's would. Held by another thread: never released here.
    if not FORK_LOCK._is_owned():  # type: ignore[attr-defined]
        FORK_LOCK._at_fork_reinit()  # type: ignore[attr-defined]


os.register_at_fork(after_in_child=_reinit_lock_in_child)

#: What a child with a ``parent_step`` writes once its ``setup`` is done, and the reply.
_READY = b"\x00"
_GO = b"g"


def call_in_child(
    fn: Callable[..., T],
    *args: Any,
    what: str = "a helper process",
    timeout: float | None = None,
    setup: Callable[[], object] | None = None,
    parent_step: Callable[[int], object] | None = None,
) -> T:
    """``fn(*args)`` run in a forked child; what it returned (a plain value, see above).

    ``setup()`` runs in the child first; then, if ``parent_step`` is given, the child
    waits while ``parent_step(pid)`` runs here (a failure there kills the child and is
    raised). ``what`` names the child in errors. With ``timeout`` (seconds, counted from
    the fork) a child that has not answered by then is killed: :class:`ChildTimeout`.
    Raises what the child raised, converted as the module docstring says.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pid, answer_r, head = _fork_and_greet(fn, args, setup, parent_step, timeout, what)
    try:
        rest = _read_all(answer_r, deadline)
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(answer_r)
    if rest is None:
        _kill(pid)
        assert timeout is not None
        raise ChildTimeout(what, timeout)
    return _decode(head + rest, what, _reap(pid))  # type: ignore[no-any-return]


def start_child(
    fn: Callable[..., object],
    *args: Any,
    what: str = "a helper process",
    setup: Callable[[], object] | None = None,
    parent_step: Callable[[int], object] | None = None,
) -> int:
    """Fork a child that runs ``setup()``, waits for ``parent_step(pid)`` when given,
    then ``fn(*args)``, which is to exec a command; the child's pid once it exec'd.

    What the child raised before its exec is raised here (converted as the module
    docstring says) and the child is reaped; after the exec the child is the caller's
    to wait for. A ``fn`` that returns makes the child exit 0.
    """
    pid, answer_r, head = _fork_and_greet(fn, args, setup, parent_step, None, what)
    try:
        data = head + (_read_all(answer_r, None) or b"")
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(answer_r)
    if data and not data.startswith(b'{"ok"'):  # an error: the child is exiting
        _decode(data, what, _reap(pid))
    return pid


def _fork_and_greet(
    fn: Callable[..., object],
    args: tuple[object, ...],
    setup: Callable[[], object] | None,
    parent_step: Callable[[int], object] | None,
    timeout: float | None,
    what: str,
) -> tuple[int, int, bytes]:
    """Fork (under :data:`FORK_LOCK`) and do the ``parent_step`` handshake: the child's
    pid, the read end of its answer pipe and what was read of the answer already."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if os.environ.get("ENVKIT_DEBUG"):
        import traceback  # noqa: F401 - imported here: the child must not import

    go_r = go_w = -1
    with FORK_LOCK:
        answer_r, answer_w = os.pipe2(os.O_CLOEXEC)
        try:
            if parent_step is not None:
                go_r, go_w = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
        except BaseException:
            for fd in (answer_r, answer_w, go_r, go_w):
                if fd >= 0:
                    os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - runs in the child
            _child(fn, args, setup, answer_r, answer_w, go_r, go_w)
        os.close(answer_w)
        if go_r >= 0:
            os.close(go_r)
    if parent_step is None:
        return pid, answer_r, b""
    try:
        greeting = _read_all(answer_r, deadline, limit=1)
        if greeting is None:
            raise ChildTimeout(what, timeout or 0.0)
        if greeting == _READY:
            parent_step(pid)
            os.write(go_w, _GO)
            greeting = b""
    except BaseException:
        os.close(answer_r)
        _kill(pid)
        raise
    finally:
        os.close(go_w)
    # Anything but the greeting is the first byte of the answer of a failed setup().
    return pid, answer_r, greeting


def _child(
    fn: Callable[..., object],
    args: tuple[object, ...],
    setup: Callable[[], object] | None,
    answer_r: int,
    answer_w: int,
    go_r: int,
    go_w: int,
) -> NoReturn:  # pragma: no cover - runs in the child
    code = 1
    try:
        try:
            os.close(answer_r)
            if go_w >= 0:
                os.close(go_w)
            if setup is not None:
                setup()
            if go_r >= 0:
                _write_all(answer_w, _READY)
                if os.read(go_r, 1) != _GO:
                    os._exit(1)  # the parent gave up: nothing to say
                os.close(go_r)
            text = json.dumps({"ok": fn(*args)})
            code = 0
        except BaseException as exc:
            text = json.dumps({"error": _describe(exc)})
            code = 1
        _write_all(answer_w, text.encode())
    finally:
        os._exit(code)


def _describe(exc: BaseException) -> dict[str, object]:  # pragma: no cover - in the child
    """An exception as the JSON the parent turns back into one (:func:`_rebuild`)."""
    if isinstance(exc, EnvkitError):
        plain = {
            key: value
            for key, value in vars(exc).items()
            if value is None or isinstance(value, str | int | float | bool)
        }
        cls = type(exc)
        return {"envkit": [cls.__module__, cls.__qualname__], "attrs": plain}
    report: dict[str, object] = {"type": type(exc).__name__, "message": _text(exc)}
    if isinstance(exc, OSError):
        report["errno"] = exc.errno
    if os.environ.get("ENVKIT_DEBUG") and "traceback" in sys.modules:
        report["traceback"] = sys.modules["traceback"].format_exc()
    return report


def _text(exc: BaseException) -> str:
    """What a person reads for ``exc``: ``strerror: file`` for an ``OSError``."""
    if isinstance(exc, OSError):
        if exc.strerror:
            return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _decode(data: bytes, what: str, status: int) -> Any:
    """The child's answer ``data`` as its value, or its error raised."""
    try:
        answer = json.loads(data) if data else None
    except ValueError:
        answer = None  # cut short: the child was killed while writing
    if not isinstance(answer, dict) or not ("ok" in answer or "error" in answer):
        raise ChildDied(what, os.waitstatus_to_exitcode(status))
    if "ok" in answer:
        return answer["ok"]
    raise _rebuild(answer["error"]) from None


def _rebuild(report: dict[str, Any]) -> Exception:
    """The exception a child described with :func:`_describe`."""
    if "envkit" in report:
        module, qualname = report["envkit"]
        cls: object = sys.modules.get(str(module))
        for part in str(qualname).split("."):
            cls = getattr(cls, part, None)
        attrs = dict(report.get("attrs") or {})
        message = str(attrs.get("message", ""))
        if isinstance(cls, type) and issubclass(cls, EnvkitError):
            # Not cls(...): subclasses' constructors differ; the attributes are the state.
            error = cls.__new__(cls)
            error.args = (message,)
            error.__dict__.update(attrs)
            return error
        hint = attrs.get("hint")
        return ChildError(message, hint=None if hint is None else str(hint), type_name=qualname)
    errno = report.get("errno")
    return ChildError(
        str(report.get("message", "")),
        type_name=str(report.get("type", "")),
        errno=errno if isinstance(errno, int) else None,
        child_traceback=str(report.get("traceback", "")),
    )


def _read_all(fd: int, deadline: float | None, limit: int | None = None) -> bytes | None:
    """What ``fd`` gives until EOF (or ``limit`` bytes); ``None`` when ``deadline``
    passes first."""
    chunks: list[bytes] = []
    size = 0
    while limit is None or size < limit:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
        chunk = os.read(fd, 65536 if limit is None else limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _reap(pid: int) -> int:
    """The child's wait status."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0  # reaped already (a caller that ignores SIGCHLD): no status to give


def _kill(pid: int) -> None:
    """Kill and reap the child: nothing is left behind when the caller gives up."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
