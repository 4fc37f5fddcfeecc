"""The supervisor's control socket: typed requests, a dispatch table, JSON on the wire.

``$ENVKIT_HOME/stacks/<name>/control.sock`` is a unix stream socket, mode 0600 in a 0700
dir, and every connection's peer uid (``SO_PEERCRED``) must be the supervisor's own:
only its user can open it, and the check holds even if the modes are loosened.

One request a connection: a JSON object on one line (``{"op": "ps"}``), with the
caller's stdin, stdout and stderr passed as ``SCM_RIGHTS`` for ``exec``. Each op has a
request class (:data:`REQUESTS`) that checks the fields' types when it is read
(:func:`parse`); the supervisor registers one handler per op in a :class:`Dispatcher`.
Nothing that arrives is unpickled or evaluated: a ``replace`` carries the new stack as
JSON data of spec objects (:mod:`envkit.stack.specjson`). The answer is one JSON line
(``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "hint": ...}``), except for
``logs`` with ``follow``, which streams text until the stack stops or the caller hangs
up. docs/dev/stack.md lists the requests and their answers.
"""

from __future__ import annotations

import codecs
import json
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from envkit.errors import BadControlRequestError, EnvkitError, SupervisorUnreachableError
from envkit.host.unix_address import short_address
from envkit.records import Record, Value, field

Handler = Callable[[dict[str, Any], list[int], socket.socket], dict[str, Any] | None]
_MAX_REQUEST = 16 << 20
_CRED = struct.Struct("3i")


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of unix socket ``conn``."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    return int(_CRED.unpack(raw)[1])


def hung_up(conn: socket.socket) -> bool:
    """Whether the caller at the other end of ``conn`` closed it (it sends nothing
    after its request: anything readable is the end of the stream)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


# -- requests ---------------------------------------------------------------------------


class Request(Value):
    """Base of the typed requests; ``op`` names each on the wire."""

    op: ClassVar[str] = ""

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent for this request."""
        body: dict[str, Any] = {"op": self.op}
        for name in self.FIELDS:
            value = getattr(self, name)
            body[name] = list(value) if isinstance(value, tuple) else value
        return body

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Request:
        """The request a JSON object describes; :class:`BadControlRequestError` for a
        wrong field."""
        return cls()


class Ps(Request):
    """The stack's state (``{"state": StackState as JSON}``)."""

    op: ClassVar[str] = "ps"


class Logs(Request):
    """The output of ``services`` (all when empty): ``{"text": ...}``, or with ``follow``
    the text streamed until the stack stops."""

    op: ClassVar[str] = "logs"
    services: tuple[str, ...] = ()
    follow: bool = False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Logs:
        return cls(_strings(data, "services"), _bool(data, "follow"))


class Exec(Request):
    """Run ``cmd`` in ``service``'s container on the caller's stdio (three fds):
    ``{"exit_code": N, "error": text}``."""

    op: ClassVar[str] = "exec"
    service: str
    cmd: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {**super().to_wire(), "env": dict(self.env)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Exec:
        service = _optional_string(data, "service")
        if not service:
            raise BadControlRequestError("bad request: exec needs a 'service'")
        return cls(
            service,
            _strings(data, "cmd"),
            _string_map(data, "env"),
            _optional_string(data, "workdir"),
            _optional_string(data, "user"),
        )


class Down(Request):
    """Stop the stack (``{"pid": supervisor pid}``); the caller waits for the pid.
    ``grace``: seconds between SIGTERM and SIGKILL (compose's ``down -t``; ``None``:
    the supervisor's own, 10)."""

    op: ClassVar[str] = "down"
    grace: float | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Down:
        grace = data.get("grace")
        if grace is not None and (
            isinstance(grace, bool)
            or not isinstance(grace, int | float)
            or not 0 <= grace < float("inf")  # also refuses nan
        ):
            raise BadControlRequestError("bad request: 'grace' must be seconds, 0 or more")
        return cls(None if grace is None else float(grace))


class Stop(Request):
    """Stop ``services`` (all when empty) until a ``start``: ``{"services": [...]}``."""

    op: ClassVar[str] = "stop"
    services: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Stop:
        return cls(_strings(data, "services"))


class Start(Stop):
    """Start stopped ``services`` (all stopped ones when empty)."""

    op: ClassVar[str] = "start"


class Restart(Stop):
    """Stop, then start ``services`` (all when empty), each with a new container."""

    op: ClassVar[str] = "restart"


class Replace(Request):
    """Bring the stack to a new definition: ``stack`` is its JSON form
    (:func:`envkit.stack.specjson.encode`), ``images`` service -> image to run,
    ``services`` those ``up`` selected. Answers ``{"recreated": [...], "removed": [...]}``."""

    op: ClassVar[str] = "replace"
    stack: Mapping[str, Any]
    images: Mapping[str, str]
    services: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "stack": dict(self.stack),
            "images": dict(self.images),
            "services": list(self.services),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Replace:
        stack = data.get("stack")
        if not isinstance(stack, dict):
            raise BadControlRequestError("bad request: replace needs the 'stack' as a JSON object")
        return cls(stack, _string_map(data, "images"), _strings(data, "services"))


#: Every request class by its op.
REQUESTS: dict[str, type[Request]] = {
    cls.op: cls for cls in (Ps, Logs, Exec, Down, Stop, Start, Restart, Replace)
}


def parse(data: Mapping[str, Any]) -> Request:
    """The typed request of a JSON object read from the socket."""
    op = data.get("op")
    cls = REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise BadControlRequestError(
            f"unknown request {op!r}",
            hint="requests: " + ", ".join(sorted(REQUESTS)),
        )
    return cls.from_wire(data)


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadControlRequestError(f"bad request: {key!r} must be a list of strings")
    return tuple(value)


def _optional_string(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BadControlRequestError(f"bad request: {key!r} must be a string")
    return value


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise BadControlRequestError(f"bad request: {key!r} must be true or false")
    return value


def _string_map(data: Mapping[str, Any], key: str) -> dict[str, str]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadControlRequestError(f"bad request: {key!r} must map strings to strings")
    return {str(k): v for k, v in value.items()}


# -- dispatch ---------------------------------------------------------------------------


class Call(Record):
    """The connection a request came on: the fds passed with it (a handler that keeps
    one removes it from the list) and the socket, for answers streamed as text."""

    fds: list[int]
    conn: socket.socket


Answer = dict[str, Any]
R = TypeVar("R", bound=Request)


class Dispatcher:
    """The dispatch table: op -> handler of its typed request. A :class:`Server`
    handler: each request is parsed (:func:`parse`) and passed to the handler of its op,
    whose answer gets ``"ok": true`` (``None``: it answered on the socket itself)."""

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[Any, Call], Answer | None]] = {}

    def on(self, kind: type[R], handler: Callable[[R, Call], Answer | None]) -> None:
        """Answer requests of class ``kind`` with ``handler``."""
        self._handlers[kind.op] = handler

    @property
    def ops(self) -> list[str]:
        """The ops with a handler."""
        return sorted(self._handlers)

    def __call__(self, data: dict[str, Any], fds: list[int], conn: socket.socket) -> Answer | None:
        request = parse(data)
        handler = self._handlers.get(request.op)
        if handler is None:
            raise BadControlRequestError(f"this supervisor does not answer {request.op!r} requests")
        answer = handler(request, Call(fds, conn))
        return None if answer is None else {"ok": True, **answer}


# -- the server -------------------------------------------------------------------------


class Server:
    """Serves ``handler`` on ``path`` from a daemon thread; ``handler(request, fds,
    conn)`` returns the answer, or ``None`` when it wrote the answer itself.

    ``listening`` is a listening socket's descriptor to serve instead of binding
    ``path`` anew: the one a supervisor kept through its hold phase, with the
    connections waiting on it (:mod:`envkit.stack.holding`).
    """

    def __init__(self, path: Path, handler: Handler, listening: int | None = None) -> None:
        self.path = path
        self.handler = handler
        if listening is not None:
            os.set_inheritable(listening, False)
            self._sock = socket.socket(fileno=listening)
        else:
            self._sock = _bind(path)
        self._sock.setblocking(False)  # accepted after poll: a caller gone meanwhile
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._answering = 0

    def start(self) -> None:
        """Start answering (again, after :meth:`pause`)."""
        self._thread = threading.Thread(target=self._serve, name="envkit-control", daemon=True)
        self._thread.start()

    def pause(self) -> bool:
        """Stop accepting; ``True`` when no connection is being answered either
        (connections that arrive meanwhile wait in the socket's backlog). ``False``:
        some is, and the server accepts again."""
        os.write(self._wake_w, b"p")
        if self._thread is not None:
            self._thread.join()
        os.read(self._wake_r, 1)
        with self._lock:
            idle = self._answering == 0
        if not idle:
            self.start()
        return idle

    def listening_fd(self) -> int:
        """The listening socket's descriptor."""
        return self._sock.fileno()

    def close(self) -> None:
        """Stop answering and remove the socket file."""
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"c")
        with suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with suppress(FileNotFoundError):
            self.path.unlink()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._thread is None or not self._thread.is_alive():
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._closed:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready or self._closed:
                return
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                continue
            except OSError:
                return
            conn.setblocking(True)
            with self._lock:
                self._answering += 1
            threading.Thread(
                target=self._answer_counted, args=(conn,), name="envkit-control-conn", daemon=True
            ).start()

    def _answer_counted(self, conn: socket.socket) -> None:
        try:
            self._answer(conn)
        finally:
            with self._lock:
                self._answering -= 1

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


def _bind(path: Path) -> socket.socket:
    """A listening unix socket at ``path`` (0600 in a 0700 dir), replacing a stale one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    with suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        with short_address(path) as address:
            sock.bind(address)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


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
    """A connection to the supervisor at ``path``, or :class:`SupervisorUnreachableError`."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    conn.settimeout(timeout)
    try:
        with short_address(path) as address:
            conn.connect(address)
    except OSError as exc:
        conn.close()
        raise SupervisorUnreachableError(
            f"no stack supervisor answers on {path}: {exc.strerror or exc}",
            hint="`envkit ls` shows the stacks; `envkit down -p NAME` cleans up a dead one",
        ) from None
    return conn


def request(
    path: Path,
    payload: Request | dict[str, Any],
    fds: Sequence[int] = (),
    timeout: float | None = 30.0,
) -> dict[str, Any]:
    """Send one request (typed, or its JSON object) and return the answer; an ``ok:
    false`` answer is raised as an :class:`~envkit.errors.EnvkitError` with the
    supervisor's message and hint."""
    if isinstance(payload, Request):
        payload = payload.to_wire()
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
        raise SupervisorUnreachableError(
            "the stack supervisor closed the connection without answering"
        )
    answer = json.loads(data)
    assert isinstance(answer, dict)
    return answer


def stream_text(path: Path, payload: Request | dict[str, Any]) -> Iterator[str]:
    """Send a streaming request (``logs`` with ``follow``); the text as it comes."""
    if isinstance(payload, Request):
        payload = payload.to_wire()
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
