"""The supervisor's control socket: ``ps``, ``logs``, ``exec``, ``down``, ``stop``,
``start``, ``restart`` and ``replace`` asked by other processes of the same user.

``$ENVKIT_HOME/stacks/<name>/control.sock`` is a unix stream socket, mode 0600 in a 0700
dir, and every connection's peer uid (``SO_PEERCRED``) must be the supervisor's own:
only its user can open it, and the check holds even if the modes are loosened.

One request a connection: a JSON object on one line (``{"op": "ps"}``), with the
caller's stdin, stdout and stderr passed as ``SCM_RIGHTS`` for ``exec``. The answer is
one JSON line (``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "hint": ...}``),
except for ``logs`` with ``follow``, which streams text until the stack stops or the
caller hangs up.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from envkit.errors import EnvkitError

Handler = Callable[[dict[str, Any], list[int], socket.socket], dict[str, Any] | None]
_MAX_REQUEST = 16 << 20
_CRED = struct.Struct("3i")


class Unreachable(EnvkitError):
    """No supervisor answers on the stack's socket (it is gone, or not this user's)."""


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of unix socket ``conn``."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    return int(_CRED.unpack(raw)[1])


class Server:
    """Serves ``handler`` on ``path`` from a daemon thread; ``handler(request, fds,
    conn)`` returns the answer, or ``None`` when it wrote the answer itself."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        with suppress(FileNotFoundError):
            path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._serve, name="envkit-control", daemon=True)
        self._closed = False

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def close(self) -> None:
        """Stop answering and remove the socket file."""
        self._closed = True
        with suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(
                target=self._answer, args=(conn,), name="envkit-control-conn", daemon=True
            ).start()

    def _answer(self, conn: socket.socket) -> None:
        fds: list[int] = []
        with conn:
            try:
                if peer_uid(conn) != os.geteuid():
                    # Read the request first: closing with it unread resets the connection,
                    # and the client would see EPIPE instead of this answer.
                    conn.settimeout(1.0)
                    with suppress(OSError, ValueError):
                        _receive(conn)
                    _send(conn, {"ok": False, "error": "permission denied: not this stack's user"})
                    return
                request, fds = _receive(conn)
                answer = self.handler(request, fds, conn)
            except EnvkitError as exc:
                answer = {"ok": False, "error": exc.message, "hint": exc.hint}
            except (OSError, ValueError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            finally:
                for fd in fds:
                    with suppress(OSError):
                        os.close(fd)
            if answer is not None:
                with suppress(OSError):
                    _send(conn, answer)


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data = b""
    fds: list[int] = []
    while not data.endswith(b"\n"):
        chunk, got, _, _ = socket.recv_fds(conn, 65536, 3)
        fds += got
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_REQUEST:
            raise ValueError("request too large")
    request = json.loads(data)
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise ValueError("expected a JSON object with an 'op'")
    return request, fds


def _send(conn: socket.socket, answer: dict[str, Any]) -> None:
    conn.sendall(json.dumps(answer).encode() + b"\n")


def connect(path: Path, timeout: float | None = 30.0) -> socket.socket:
    """A connection to the supervisor at ``path``, or :class:`Unreachable`."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    conn.settimeout(timeout)
    try:
        conn.connect(str(path))
    except OSError as exc:
        conn.close()
        raise Unreachable(
            f"no stack supervisor answers on {path}: {exc.strerror or exc}",
            hint="`envkit ls` shows the stacks; `envkit down -p NAME` cleans up a dead one",
        ) from None
    return conn


def request(
    path: Path, payload: dict[str, Any], fds: Sequence[int] = (), timeout: float | None = 30.0
) -> dict[str, Any]:
    """Send one request and return the answer; an ``ok: false`` answer is raised as an
    :class:`~envkit.errors.EnvkitError` with the supervisor's message and hint."""
    with connect(path, timeout) as conn:
        line = json.dumps(payload).encode() + b"\n"
        if fds:
            socket.send_fds(conn, [line], list(fds))
        else:
            conn.sendall(line)
        answer = _read_line(conn)
    if not answer.get("ok"):
        raise EnvkitError(
            str(answer.get("error", "the supervisor failed")), hint=answer.get("hint")
        )
    return answer


def _read_line(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data:
        raise Unreachable("the stack supervisor closed the connection without answering")
    answer = json.loads(data)
    assert isinstance(answer, dict)
    return answer


def stream_text(path: Path, payload: dict[str, Any]) -> Iterator[str]:
    """Send a streaming request (``logs`` with ``follow``); the text as it comes."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with connect(path, timeout=None) as conn:
        conn.sendall(json.dumps(payload).encode() + b"\n")
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
                return
            yield decoder.decode(chunk)
