"""Running :class:`~envkit.spec.readiness.Ready` probes against a container.

- ``tcp``: a socket in LISTEN state on the port, read from ``/proc/<pid>/net/tcp[6]``
  of the container's init (its network namespace), so no tool is needed in the image
  and nothing is connected to the service.
- ``http``: a ``GET`` from a short-lived child process that joins the container's user
  and network namespaces, to 127.0.0.1 (or the address the port listens on).
- ``log``: a line the container wrote since it started, matched by a regex.
- ``command``: the command run in the container as ``exec`` does, exit code 0.

The supervisor runs them for ``depends_on`` and ``ps``; users' tests run them through
:meth:`envkit.stack.RunningService.wait_ready`.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterable

from envkit.errors import ChildError
from envkit.host.forking import call_in_child
from envkit.records import Record
from envkit.spec.readiness import Ready
from envkit.stack import health

#: Seconds one HTTP try may take.
HTTP_TRY_TIMEOUT = 2.0
#: Seconds the child making an HTTP try may live (the try, plus joining namespaces).
HTTP_CHILD_TIMEOUT = HTTP_TRY_TIMEOUT + 3.0
_LISTEN = "0A"


class Target(Record):
    """What a probe looks at: the container's init pid, a way to get its runtime record
    (for ``command``) and the lines it wrote since it started (for ``log``)."""

    pid: int
    record: Callable[[], object]
    log_lines: Callable[[], Iterable[str]]


def probe_once(ready: Ready, target: Target) -> tuple[bool, str]:
    """Try ``ready`` once: whether it passed, and what was seen."""
    if ready.kind == "tcp":
        assert ready.port is not None
        found = listening(target.pid, ready.port) is not None
        return found, "" if found else f"nothing listens on port {ready.port}"
    if ready.kind == "http":
        return _http(ready, target.pid)
    if ready.kind == "log":
        assert ready.pattern is not None
        pattern = re.compile(ready.pattern)
        for line in target.log_lines():
            if pattern.search(line):
                return True, line.rstrip("\n")
        return False, "no matching log line yet"
    assert ready.argv is not None
    return health.run_once(target.record(), ready.argv, max(ready.interval, 5.0))


def listening(pid: int, port: int) -> str | None:
    """The local address a TCP socket listens on ``port`` in the network namespace of
    process ``pid`` (``0.0.0.0``, ``::`` or a specific one); ``None`` when none does."""
    for table, v6 in (("tcp", False), ("tcp6", True)):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != _LISTEN:
                continue
            address, _, hex_port = fields[1].partition(":")
            if int(hex_port, 16) == port:
                return _address(address, v6)
    return None


def _address(hex_address: str, v6: bool) -> str:
    """An address of ``/proc/net/tcp`` (host byte order words) as text."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, words)


def _http(ready: Ready, pid: int) -> tuple[bool, str]:
    assert ready.port is not None and ready.path is not None
    address = listening(pid, ready.port)
    if address is None:
        return False, f"nothing listens on port {ready.port}"
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "::ffff:0.0.0.0") else address
    from envkit.runtime.nsexec import target_process  # lazy: only an http probe uses it

    try:
        # Joined through the command process: the init is not dumpable, so an
        # unprivileged caller may not open its namespace files.
        status = _in_netns(target_process(pid), _get_status, host, ready.port, ready.path)
    except (OSError, ChildError) as exc:
        return False, f"GET {ready.path}: {getattr(exc, 'strerror', None) or exc}"
    if status == ready.status:
        return True, f"GET {ready.path}: {status}"
    return False, f"GET {ready.path}: {status} (waiting for {ready.status})"


def _get_status(host: str, port: int, path: str) -> int:
    """The status code of ``GET path`` (HTTP/1.0: the server closes after answering)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(HTTP_TRY_TIMEOUT)
        conn.connect((host, port))
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head and len(head) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise OSError(0, f"not an HTTP answer: {head[:80]!r}")
    return int(parts[1])


def _in_netns(pid: int, fn: Callable[[str, int, str], int], *args: object) -> int:
    """``fn(*args)`` in a child that joined the user and network namespaces of ``pid``
    (joining a user namespace needs a single-threaded process: a fresh child is one).
    A child that hangs (a server that accepts and never answers is cut by the socket's
    timeout; anything else) is killed after :data:`HTTP_CHILD_TIMEOUT`."""
    from envkit.host import syscalls  # noqa: F401 - for _join: the child imports nothing

    return int(
        call_in_child(
            _joined,
            pid,
            fn,
            *args,
            what="the readiness probe's process",
            timeout=HTTP_CHILD_TIMEOUT,
        )
    )


def _joined(
    pid: int, fn: Callable[..., int], *args: object
) -> int:  # pragma: no cover - runs in a child
    _join(pid)
    return fn(*args)


def _join(pid: int) -> None:  # pragma: no cover - runs in a child
    from envkit.host import syscalls  # imported by the parent already

    def same(kind: str) -> bool:
        return os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}")

    if same("net"):
        return
    # Both opened first: once in the container's user namespace, /proc/<pid> of the
    # host may no longer be ours to open.
    user_fd = -1 if same("user") else os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    net_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if user_fd >= 0:
        syscalls.setns(user_fd, syscalls.CLONE_NEWUSER)
    syscalls.setns(net_fd, syscalls.CLONE_NEWNET)


def wait(ready: Ready, target: Target, started: float, alive: Callable[[], bool]) -> str | None:
    """Try ``ready`` every ``interval`` until it passes (``None``) or its timeout,
    counted from monotonic time ``started``, is over or ``alive()`` turns false: why."""
    detail = ""
    while True:
        if not alive():
            return f"{ready.describe()}: the container exited"
        ok, detail = probe_once(ready, target)
        if ok:
            return None
        if time.monotonic() - started >= ready.timeout:
            return f"{ready.describe()}: not within {ready.timeout:g} s ({detail})"
        time.sleep(ready.interval)
