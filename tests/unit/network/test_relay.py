"""envkit.network.relay: bytes arrive intact, half-closes pass on, splice or copy."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

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


# -- a flood of connections: bounded, and the listener keeps serving --------------------


class _Echo:
    """An upstream that echoes, accepting for ever (the relay's ``connect`` target)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.address = self.server.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def connect(self, _client: socket.socket) -> socket.socket:
        return socket.create_connection(self.address)


def _relayed(listener: socket.socket, source: str = "127.0.0.1") -> socket.socket | None:
    """A connection through the relay from ``source``; ``None`` when it was reset."""
    try:  # on loopback the reset can come before connect() has returned
        conn = socket.create_connection(
            listener.getsockname(), timeout=5, source_address=(source, 0)
        )
    except ConnectionResetError:
        return None
    try:
        conn.sendall(b"ping")
        if conn.recv(4) == b"ping":
            return conn
    except OSError:
        pass
    conn.close()
    return None


def test_connections_past_the_limits_are_reset_and_others_still_served() -> None:
    """A container opening connections without end made the network daemon start two
    threads (and six descriptors) for each: it exhausted them for every container."""
    echo = _Echo()
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    relay.in_thread(relay.serve_tcp, listener, echo.connect, 5, 3)
    mine = [_relayed(listener) for _ in range(3)]
    assert all(c is not None for c in mine)
    assert _relayed(listener) is None  # a 4th from the same address
    others = [_relayed(listener, "127.0.0.2") for _ in range(2)]
    assert all(c is not None for c in others)
    assert _relayed(listener, "127.0.0.3") is None  # 5 in all
    closing = mine.pop()
    assert closing is not None
    closing.close()

    for _ in range(100):  # a slot is free again once the relay saw the close
        again = _relayed(listener, "127.0.0.3")
        if again is not None:
            mine.append(again)
            break
        time.sleep(0.05)
    else:
        pytest.fail("the closed connection's slot never came back")
    for conn in [*mine, *others]:
        assert conn is not None
        conn.close()
    listener.close()


class _Flaky:
    """A listener whose accept fails as a process out of descriptors sees it (EMFILE,
    ECONNABORTED), then accepts, then is shut (EINVAL)."""

    def __init__(self, real: socket.socket, failures: list[int]) -> None:
        self.real = real
        self.failures = failures

    def accept(self) -> tuple[socket.socket, object]:
        if self.failures:
            raise OSError(self.failures.pop(0), "accept failed")
        return self.real.accept()

    def fileno(self) -> int:
        return self.real.fileno()

    def getsockname(self) -> object:
        return self.real.getsockname()


def test_accept_failures_out_of_descriptors_do_not_end_the_listener() -> None:
    """accept() failing with EMFILE ended the loop: egress, or a published port, was
    gone for good once a flood had exhausted the daemon's descriptors."""
    echo = _Echo()
    real = socket.create_server(("127.0.0.1", 0))
    flaky = _Flaky(real, [errno.EMFILE, errno.ENFILE, errno.ECONNABORTED, errno.ENOBUFS])
    serving = relay.in_thread(relay.serve_tcp, flaky, echo.connect)
    conn = _relayed(real)
    assert conn is not None
    conn.close()
    real.shutdown(socket.SHUT_RDWR)
    serving.join(5)
    assert not serving.is_alive()  # a shut listener still ends it
    real.close()


def _refuse_one_thread(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The next start of a thread named ``name`` fails as with RLIMIT_NPROC reached."""
    real_start = threading.Thread.start
    refused = [1]

    def start(self: threading.Thread) -> None:
        if refused and self.name == name:
            refused.pop()
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)


def test_a_thread_that_cannot_start_resets_that_client_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    echo = _Echo()
    listener = socket.create_server(("127.0.0.1", 0))
    relay.in_thread(relay.serve_tcp, listener, echo.connect)
    _refuse_one_thread(monkeypatch, "envkit-relay")
    assert _relayed(listener) is None
    conn = _relayed(listener)
    assert conn is not None
    conn.close()
    listener.close()


def test_no_thread_for_the_second_direction_resets_and_frees_the_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    echo = _Echo()
    listener = socket.create_server(("127.0.0.1", 0))
    relay.in_thread(relay.serve_tcp, listener, echo.connect, 1)
    _refuse_one_thread(monkeypatch, "envkit-relay-back")
    assert _relayed(listener) is None
    for _ in range(100):  # the one slot (limit 1) comes back
        conn = _relayed(listener)
        if conn is not None:
            conn.close()
            break
        time.sleep(0.05)
    else:
        pytest.fail("the slot of the refused connection never came back")
    listener.close()


def test_udp_clients_past_the_limit_are_dropped() -> None:
    asked: list[tuple[str, int]] = []
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))

    def upstream_for(client: tuple[str, int]) -> socket.socket:
        asked.append(client)
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.connect(upstream.getsockname())
        return up

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    relay.in_thread(relay.serve_udp, sock, upstream_for, 60.0, 2)
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    upstream.settimeout(2)
    for n, client in enumerate(clients):
        client.sendto(b"q%d" % n, sock.getsockname())
        if n < 2:
            assert upstream.recv(100) == b"q%d" % n
    with pytest.raises(TimeoutError):
        upstream.settimeout(0.5)
        upstream.recv(100)
    assert len(asked) == 2
    for s in (*clients, sock, upstream):
        s.close()
