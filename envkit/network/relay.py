"""Byte relays between sockets that live in different network namespaces.

A TCP connection gets two threads, one per direction, each copying through a 256 KiB
buffer with ``recv_into``/``sendall`` (the GIL is released in both, so the two
directions and many connections run in parallel). A half-close is passed on with
``shutdown(SHUT_WR)``. UDP is relayed per client address: each client gets its own
upstream socket (so replies find their way back) that is dropped after a minute idle.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

BUFFER = 256 * 1024
UDP_IDLE_SECONDS = 60.0


def _pump(src: socket.socket, dst: socket.socket) -> None:
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if n == 0:
                break
            dst.sendall(view[:n])
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


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
