"""envkit.network.relay: bytes arrive intact, half-closes pass on, splice or copy."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

from envkit.network import relay

PAYLOAD = os.urandom(3 * relay.BUFFER + 12345)


def _through_pump() -> bytes:
    """Send :data:`PAYLOAD` through one ``_pump`` between two TCP connections."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        sender = socket.create_connection(("127.0.0.1", port))
        src, _ = server.accept()
        dst_peer = socket.create_connection(("127.0.0.1", port))
        dst, _ = server.accept()
    pump = threading.Thread(target=relay._pump, args=(src, dst))
    pump.start()
    sender.sendall(PAYLOAD)
    sender.shutdown(socket.SHUT_WR)
    received = b"".join(iter(lambda: dst_peer.recv(65536), b""))  # ends: half-close passed
    pump.join()
    for sock in (sender, src, dst, dst_peer):
        sock.close()
    return received


def test_pump_splices_every_byte_and_passes_the_half_close() -> None:
    assert _through_pump() == PAYLOAD


def test_pump_copies_when_the_kernel_refuses_to_splice(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def refuse(*args: object, **kwargs: object) -> int:
        calls.append(1)
        raise OSError(errno.EINVAL, "splice refused")

    monkeypatch.setattr(os, "splice", refuse)
    assert _through_pump() == PAYLOAD
    assert calls == [1]


def test_pump_never_corks(monkeypatch: pytest.MonkeyPatch) -> None:
    """SPLICE_F_MORE corks the socket like MSG_MORE: a short answer would wait ~200 ms."""
    flags: list[int] = []
    real = os.splice

    def spy(src: int, dst: int, count: int, offset_src: object = None, **kw: int) -> int:
        flags.append(kw.get("flags", 0))
        return real(src, dst, count, flags=kw.get("flags", 0))

    monkeypatch.setattr(os, "splice", spy)
    assert _through_pump() == PAYLOAD
    assert flags and not any(f & os.SPLICE_F_MORE for f in flags)
