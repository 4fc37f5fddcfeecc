"""Byte relays between sockets that live in different network namespaces.

A TCP connection gets two threads, one per direction, each moving the bytes with
``splice`` through a 256 KiB pipe, so they never cross user space (a plain
``recv_into``/``sendall`` copy where the kernel refuses to splice); the GIL is released
either way, so the two directions and many connections run in parallel. A half-close
is passed on with ``shutdown(SHUT_WR)``. UDP is relayed per client address: each client
gets its own upstream socket (so replies find their way back) that is dropped after a
minute idle.

Bounded, since what is relayed comes from containers (egress) or from anyone who can
reach a published port, and the daemon serves every container of the home: at most
:data:`MAX_CONNECTIONS` TCP connections per listener (and, for egress,
:data:`MAX_PER_CLIENT` from one address) and :data:`MAX_UDP_CLIENTS` UDP clients per
socket; past that a new connection is reset, a new client's datagram dropped. A listener
whose ``accept`` fails for want of descriptors or memory waits and goes on (as Go's
``net/http`` does), and ends only when it is shut.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import struct
import threading
import time
from collections.abc import Callable

BUFFER = 256 * 1024
UDP_IDLE_SECONDS = 60.0
#: TCP connections one listener relays at once (two threads and six descriptors each).
MAX_CONNECTIONS = 4096
#: TCP connections the egress proxy relays at once for one container address.
MAX_PER_CLIENT = 1024
#: UDP clients (address and port) one socket relays for at once.
MAX_UDP_CLIENTS = 1024
#: accept() errors after which the listener is gone, not short of something.
_CLOSED = (errno.EBADF, errno.EINVAL, errno.ENOTSOCK)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        if not _splice_all(src, dst):
            _copy_all(src, dst)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _splice_all(src: socket.socket, dst: socket.socket) -> bool:
    """Move bytes from ``src`` to ``dst`` until end of file, through a pipe in the
    kernel (``splice``): no copy through user space, and the GIL is released.

    ``False`` when the kernel refuses to splice these sockets (before anything moved).
    """
    r, w = os.pipe()
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, BUFFER)
        # Not SPLICE_F_MORE: like MSG_MORE it corks the socket, holding back a last small
        # segment (an HTTP answer) for up to 200 ms.
        flags = os.SPLICE_F_MOVE
        source, target = src.fileno(), dst.fileno()
        try:
            n = os.splice(source, w, BUFFER, flags=flags)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return False
            raise
        while n:
            while n:
                n -= os.splice(r, target, n, flags=flags)
            n = os.splice(source, w, BUFFER, flags=flags)
        return True
    finally:
        os.close(r)
        os.close(w)


def _copy_all(src: socket.socket, dst: socket.socket) -> None:
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    while True:
        n = src.recv_into(buf)
        if n == 0:
            return
        dst.sendall(view[:n])


def _reset(client: socket.socket) -> None:
    """Close ``client`` with a reset: it sees a refused connection, not an empty answer."""
    with contextlib.suppress(OSError):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def splice(a: socket.socket, b: socket.socket) -> None:
    """Relay both directions between ``a`` and ``b`` until both are done; close them
    (at once, the connection refused, when no second thread can start)."""
    other = threading.Thread(target=_pump, args=(b, a), daemon=True, name="envkit-relay-back")
    try:
        other.start()
    except RuntimeError:  # no thread to be had (RLIMIT_NPROC, memory)
        _reset(a)
        b.close()
        return
    _pump(a, b)
    other.join()
    a.close()
    b.close()


def _tune(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def accept_forever(listener: socket.socket, serve: Callable[[socket.socket, str], None]) -> None:
    """Call ``serve(connection, peer address)`` for each connection ``listener``
    accepts, until it is shut or closed. A failure for want of descriptors or memory
    (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``) or a connection aborted while queued
    is waited out (5 ms, doubling up to 1 s) instead of ending the loop."""
    delay = 0.0
    while True:
        try:
            conn, peer = listener.accept()
        except OSError as exc:
            if exc.errno in _CLOSED or listener.fileno() == -1:
                return
            delay = min(max(2 * delay, 0.005), 1.0)
            time.sleep(delay)
            continue
        delay = 0.0
        serve(conn, peer[0] if isinstance(peer, tuple) else "")


def serve_tcp(
    listener: socket.socket,
    connect: Callable[[socket.socket], socket.socket | None],
    limit: int = MAX_CONNECTIONS,
    per_client: int | None = None,
) -> None:
    """Accept on ``listener`` until it is shut; relay each client to ``connect(client)``.

    ``connect`` returns the upstream socket, or ``None`` to refuse (the client is reset).
    It runs in the connection's own thread, so a slow upstream holds up nobody else. At
    most ``limit`` connections are relayed at once, and ``per_client`` from one address;
    past either (or when no thread can start) a new one is reset.
    """
    lock = threading.Lock()
    active: dict[str, int] = {}
    total = [0]

    def done(address: str) -> None:
        with lock:
            total[0] -= 1
            active[address] -= 1
            if not active[address]:
                del active[address]

    def handle(client: socket.socket, address: str) -> None:
        try:
            try:
                upstream = connect(client)
            except Exception:  # a refusal for this client, whatever broke in the look-up
                upstream = None
            if upstream is None:
                _reset(client)
                return
            # A connect timeout bounds the connect only: an idle connection stays open.
            upstream.settimeout(None)
            _tune(client)
            _tune(upstream)
            splice(client, upstream)
        finally:
            done(address)

    def serve(client: socket.socket, address: str) -> None:
        with lock:
            if total[0] >= limit or (
                per_client is not None and active.get(address, 0) >= per_client
            ):
                full = True
            else:
                full = False
                total[0] += 1
                active[address] = active.get(address, 0) + 1
        if full:
            _reset(client)
            return
        try:
            thread = threading.Thread(
                target=handle, args=(client, address), daemon=True, name="envkit-relay"
            )
            thread.start()
        except RuntimeError:  # no thread to be had (RLIMIT_NPROC, memory)
            done(address)
            _reset(client)

    accept_forever(listener, serve)


def serve_udp(
    sock: socket.socket,
    upstream_for: Callable[[tuple[str, int]], socket.socket | None],
    idle: float = UDP_IDLE_SECONDS,
    limit: int = MAX_UDP_CLIENTS,
) -> None:
    """Relay datagrams from clients of ``sock`` to ``upstream_for(client)`` and back.

    ``upstream_for`` returns a connected datagram socket, or ``None`` to drop the client.
    While ``limit`` clients are being relayed for, a new client's datagrams are dropped.
    """
    sessions: dict[tuple[str, int], socket.socket] = {}
    lock = threading.Lock()

    def replies(client: tuple[str, int], up: socket.socket) -> None:
        up.settimeout(idle)
        try:
            while True:
                data = up.recv(65535)
                sock.sendto(data, client)
        except OSError:
            pass
        with lock:
            if sessions.get(client) is up:
                del sessions[client]
        up.close()

    while True:
        try:
            data, client = sock.recvfrom(65535)
        except OSError:
            return
        with lock:
            up = sessions.get(client)
            full = len(sessions) >= limit
        if up is None:
            if full:
                continue
            try:
                up = upstream_for(client)
            except OSError:
                up = None
            if up is None:
                continue
            with lock:
                sessions[client] = up
            try:
                threading.Thread(target=replies, args=(client, up), daemon=True).start()
            except RuntimeError:  # no thread to be had: drop the client
                with lock:
                    del sessions[client]
                up.close()
                continue
        with contextlib.suppress(OSError):
            up.send(data)


def in_thread(fn: Callable[..., None], *args: object) -> threading.Thread:
    """Start ``fn(*args)`` in a daemon thread."""
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread
