"""Byte relays between sockets that live in different network namespaces.

A TCP connection gets two threads, one per direction, each moving the bytes with
``splice`` through a 256 KiB pipe, so they never cross user space (a plain
``recv_into``/``sendall`` copy where the kernel refuses to splice); the GIL is released
either way, so the two directions and many connections run in parallel. A half-close
is passed on with ``shutdown(SHUT_WR)``. UDP is relayed per client address: each client
gets its own upstream socket (so replies find their way back) that is dropped after a
minute idle.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable

BUFFER = 256 * 1024
UDP_IDLE_SECONDS = 60.0


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


def splice(a: socket.socket, b: socket.socket) -> None:
    """Relay both directions between ``a`` and ``b`` until both are done; close them."""
    other = threading.Thread(target=_pump, args=(b, a), daemon=True)
    other.start()
    _pump(a, b)
    other.join()
    a.close()
    b.close()


def _tune(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serve_tcp(
    listener: socket.socket, connect: Callable[[socket.socket], socket.socket | None]
) -> None:
    """Accept on ``listener`` forever; relay each client to ``connect(client)``.

    ``connect`` returns the upstream socket, or ``None`` to refuse (the client is closed).
    It runs in the connection's own thread, so a slow upstream holds up nobody else.
    """

    def handle(client: socket.socket) -> None:
        try:
            upstream = connect(client)
        except OSError:
            upstream = None
        if upstream is None:
            # Reset rather than close: the client sees a refused connection, not an
            # empty answer.
            with contextlib.suppress(OSError):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        # A connect timeout bounds the connect only: an idle connection stays open.
        upstream.settimeout(None)
        _tune(client)
        _tune(upstream)
        splice(client, upstream)

    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(client,), daemon=True).start()


def serve_udp(
    sock: socket.socket,
    upstream_for: Callable[[tuple[str, int]], socket.socket | None],
    idle: float = UDP_IDLE_SECONDS,
) -> None:
    """Relay datagrams from clients of ``sock`` to ``upstream_for(client)`` and back.

    ``upstream_for`` returns a connected datagram socket, or ``None`` to drop the client.
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
        if up is None:
            try:
                up = upstream_for(client)
            except OSError:
                up = None
            if up is None:
                continue
            with lock:
                sessions[client] = up
            threading.Thread(target=replies, args=(client, up), daemon=True).start()
        with contextlib.suppress(OSError):
            up.send(data)


def in_thread(fn: Callable[..., None], *args: object) -> threading.Thread:
    """Start ``fn(*args)`` in a daemon thread."""
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread
