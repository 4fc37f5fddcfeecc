"""Talking to the network daemon (:mod:`envkit.network.netd`) from a command.

Light on purpose: a command that starts a networked container imports this, never
pyroute2. A request is one ``SOCK_SEQPACKET`` message holding a JSON object
``{"op": NAME, "args": {...}}``, with descriptors beside it (``SCM_RIGHTS``: a
container's network namespace, the host sockets of published ports); the answer is one
message ``{"ok": value}`` or ``{"error": text, "hint": text}``, raised here as
:class:`NetworkError`.

The socket lives in the network state directory, whose path may be longer than the 108
bytes a unix socket address holds: both ends name it through ``/proc/self/fd/N/`` of
the directory opened beforehand.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Sequence

from envkit.errors import NetworkError
from envkit.host.detached import spawn_module
from envkit.host.forking import FORK_LOCK
from envkit.network import ns, state

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

SOCKET = "netd.sock"
#: The largest request or answer (JSON), in bytes.
MAX_MESSAGE = 1 << 20
#: Seconds to wait for an answer (a bridge, a veth and a few addresses take ms).
TIMEOUT = 30.0


def _address(dir_fd: int) -> str:
    return f"/proc/self/fd/{dir_fd}/{SOCKET}"


def listen() -> socket.socket:
    """The daemon's listening socket (the previous daemon's file replaced)."""
    folder = state.root()
    (folder / SOCKET).unlink(missing_ok=True)
    dir_fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        server.bind(_address(dir_fd))
        server.listen(64)
        return server
    finally:
        os.close(dir_fd)


def call(op: str, args: dict[str, Any] | None = None, fds: Sequence[int] = ()) -> Any:
    """Ask the running daemon to do ``op``; its answer. Errors: :class:`NetworkError`."""
    message = json.dumps({"op": op, "args": args or {}}).encode()
    dir_fd = os.open(state.root(), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as conn:
            conn.settimeout(TIMEOUT)
            try:
                conn.connect(_address(dir_fd))
                if fds:
                    socket.send_fds(conn, [message], list(fds))
                else:
                    conn.send(message)
                answer = conn.recv(MAX_MESSAGE)
            except OSError as exc:
                raise NetworkError(
                    f"the network daemon did not answer {op!r}: {exc.strerror or exc}",
                    hint=f"see {state.root() / 'logs' / 'netd.log'}",
                ) from None
    finally:
        os.close(dir_fd)
    if not answer:
        raise NetworkError(
            f"the network daemon closed the connection during {op!r}",
            hint=f"see {state.root() / 'logs' / 'netd.log'}",
        )
    reply = json.loads(answer)
    if "error" in reply:
        raise NetworkError(reply["error"], hint=reply.get("hint"))
    return reply["ok"]


def send(conn: socket.socket, value: Any, fds: Sequence[int] = ()) -> None:
    """One message on ``conn``: ``value`` as JSON, ``fds`` beside it (``SCM_RIGHTS``)."""
    data = json.dumps(value).encode()
    if fds:
        socket.send_fds(conn, [data], list(fds))
    else:
        conn.send(data)


def receive(conn: socket.socket, max_fds: int) -> tuple[Any, list[int]]:
    """One message from ``conn``: its JSON value and the descriptors beside it (at most
    ``max_fds``, close-on-exec: a process spawned meanwhile must not inherit a
    container's namespace or a published port). :class:`EOFError` when the peer closed;
    ``ValueError`` when the message is not JSON (its descriptors closed then)."""
    size = socket.CMSG_SPACE(max_fds * 4)
    data, ancillary, _, _ = conn.recvmsg(MAX_MESSAGE, size, socket.MSG_CMSG_CLOEXEC)
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(
                int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)
            )
    if not data:
        for fd in fds:
            os.close(fd)
        raise EOFError("the peer closed the connection")
    try:
        return json.loads(data), fds
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise


def reply_of(fn: Callable[..., Any], *args: Any, who: str = "the network daemon") -> dict[str, Any]:
    """The answer to a request that ``fn(*args)`` serves: ``{"ok": value}``, or
    ``{"error": text, "hint": text}`` for what it raised, in the words :func:`call`
    shows. ``who`` names the process in the message of a bug (any other exception,
    logged with its traceback on stderr)."""
    try:
        return {"ok": fn(*args)}
    except NetworkError as exc:
        return {"error": exc.message, "hint": exc.hint}
    except (KeyError, ValueError, TypeError) as exc:
        return {"error": f"bad request to {who}: {exc!r}"}
    except OSError as exc:
        return {"error": f"{exc.strerror or exc} (errno {exc.errno})"}
    except Exception as exc:  # a bug: said, and logged with its traceback
        import traceback  # lazy: only a bug's reply needs it

        traceback.print_exc()
        return {"error": f"{who} failed: {exc!r}"}


def result_of(reply: dict[str, Any]) -> Any:
    """The value of an answer made by :func:`reply_of`; its error raised as
    :class:`NetworkError`."""
    if "error" in reply:
        raise NetworkError(reply["error"], hint=reply.get("hint"))
    return reply["ok"]


def spawn(holder_pid: int) -> ns.Starting:
    """Start the network daemon of the holder ``holder_pid``: a fresh interpreter
    (``python -m envkit.network.netd``), detached (double fork, new session);
    ``wait()`` gives its pid once it serves.

    Exec'd rather than forked (:mod:`envkit.host.detached`): the daemon imports pyroute2,
    which a forked child of a process with threads must not do.
    """
    log = state.root() / "logs" / "netd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with FORK_LOCK:  # the status pipe's write end is the daemon's alone
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            spawn_module("envkit.network.netd", [str(holder_pid), "3"], fds={3: w}, stderr=str(log))
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
    return ns.Starting("network", log, r)
