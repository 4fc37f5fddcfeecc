"""The network daemon: one long-lived process per ``$ENVKIT_HOME`` beside the holder.

``python -m envkit.network.netd HOLDER_PID STATUS_FD`` (started by
:func:`envkit.network.control.spawn`). It joins the holder's user namespace and then
serves, until the holder dies:

- requests on its control socket (``$ENVKIT_HOME/network/netd.sock``, a
  ``SOCK_SEQPACKET`` unix socket: one JSON object per message, descriptors beside it
  with ``SCM_RIGHTS``; a reply ``{"ok": value}`` or ``{"error": text}``), dispatched
  through :data:`HANDLERS`, never unpickled. The netlink requests (bridges, veth pairs,
  addresses, routes) go on to its netlink worker, a child process that imports pyroute2
  and lives only while there is netlink work (:mod:`envkit.network.netlink_client`,
  :mod:`envkit.network.netlink_worker`): the daemon itself never imports pyroute2;
- egress: the transparent TCP proxy and the DNS relay (:mod:`envkit.network.egress`);
- published ports of every container: the host sockets the commands bound arrive with
  a ``publish`` request and are relayed into the holder's namespace (one thread per
  listener, two per connection; :mod:`envkit.network.relay`).

The state (networks, endpoints, addresses, hosts files) stays on disk, changed by the
commands under the state lock; the daemon only executes. See docs/dev/network.md.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable

from envkit.errors import NetworkError
from envkit.host import syscalls
from envkit.network import control, egress, netlink_worker, ns, ports, relay, state
from envkit.network.netlink_client import NetlinkWorker

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

#: Descriptors one request may carry (a container's netns, its published sockets).
MAX_FDS = 64
#: Seconds between two checks that the home still exists.
HOME_CHECK_SECONDS = 10.0


class Daemon:
    """What the handlers act on: the holder's namespace, the netlink worker, the
    forwarders."""

    def __init__(
        self, holder_pid: int, netlink: Callable[[int], NetlinkWorker] | None = None
    ) -> None:
        """``netlink(netns)`` makes the netlink worker's owner (default: the first worker
        forked now, so only while the daemon is single-threaded)."""
        self.holder_pid = holder_pid
        #: The holder's network namespace (the port threads join it; the worker gets it).
        self.netns = os.open(f"/proc/{holder_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if netlink is None:
            self.netlink = NetlinkWorker(self.netns, fork=netlink_worker.run)
        else:
            self.netlink = netlink(self.netns)
        #: Published listeners per container.
        self.published: dict[str, list[socket.socket]] = {}
        self.lock = threading.Lock()

    # -- handlers: (args, fds) -> a JSON value -------------------------------------------

    def ping(self, args: dict[str, Any], fds: list[int]) -> Any:
        return os.getpid()

    def publish(self, args: dict[str, Any], fds: list[int]) -> Any:
        container = args["container"]
        mappings = [ports.PortMapping(**m) for m in args["ports"]]
        if len(fds) != len(mappings):
            raise NetworkError("publish needs one socket per port mapping")
        socks = []
        for fd, mapping in zip(fds, mappings, strict=True):
            family = socket.AF_INET6 if ":" in mapping.host_ip else socket.AF_INET
            kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
            socks.append(socket.socket(family, kind, fileno=os.dup(fd)))
        with self.lock:
            self.published.setdefault(container, []).extend(socks)
        for sock, mapping in zip(socks, mappings, strict=True):
            self._in_holder(_forward, container, sock, mapping)
        return None

    def unpublish(self, args: dict[str, Any], fds: list[int]) -> Any:
        with self.lock:
            socks = self.published.pop(args["container"], [])
        for sock in socks:
            # shutdown wakes the thread blocked in accept()/recvfrom(); close alone won't.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return None

    # -- plumbing -------------------------------------------------------------------------

    def _in_holder(self, fn: Callable[..., None], *args: Any) -> None:
        """``fn(*args)`` in a daemon thread inside the holder's network namespace (the
        threads it starts are there too)."""
        fd = self.netns

        def run() -> None:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
            fn(*args)

        threading.Thread(target=run, daemon=True, name="envkit-forward").start()

    def handle(self, conn: socket.socket) -> None:
        """One request on ``conn``, answered, then ``conn`` closed."""
        fds: list[int] = []
        try:
            try:
                request, fds = control.receive(conn, MAX_FDS)
            except ValueError as exc:
                reply = {"error": f"bad request to the network daemon: {exc!r}"}
            else:
                reply = control.reply_of(_dispatch, self, request, fds)
            control.send(conn, reply)
        except (OSError, EOFError):
            pass
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()


def _dispatch(daemon: Daemon, request: dict[str, Any], fds: list[int]) -> Any:
    return HANDLERS[request["op"]](daemon, request.get("args", {}), fds)


def _netlink(op: str) -> Callable[[Daemon, dict[str, Any], list[int]], Any]:
    """The handler of ``op``: the netlink worker's answer."""

    def handler(daemon: Daemon, args: dict[str, Any], fds: list[int]) -> Any:
        return daemon.netlink.call(op, args, fds)

    return handler


def _forward(container: str, sock: socket.socket, mapping: Any) -> None:
    """Serve one published listener (in the holder's namespace) until unpublished."""
    port = mapping.container_port
    if mapping.protocol == "tcp":

        def connect(_client: socket.socket) -> socket.socket | None:
            ip = ports.container_ip(container)
            if ip is None:
                return None
            return socket.create_connection((ip, port), timeout=ports.CONNECT_TIMEOUT)

        relay.serve_tcp(sock, connect)
    else:

        def upstream(_client: tuple[str, int]) -> socket.socket | None:
            ip = ports.container_ip(container)
            if ip is None:
                return None
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.connect((ip, port))
            return up

        relay.serve_udp(sock, upstream)


#: The requests the daemon answers, by ``op``.
HANDLERS: dict[str, Callable[[Daemon, dict[str, Any], list[int]], Any]] = {
    "ping": Daemon.ping,
    # Netlink: done by the worker (bridges, veth pairs, addresses, routes).
    "setup": _netlink("setup"),
    "bridge": _netlink("bridge"),
    "remove_link": _netlink("remove_link"),
    "link_names": _netlink("link_names"),
    "attach": _netlink("attach"),
    "publish": Daemon.publish,
    "unpublish": Daemon.unpublish,
}


def _exit_with(holder_pid: int) -> None:
    """Exit when the holder does: its namespaces, and so everything served, are gone.

    Also end both when the home's network directory is gone (a removed
    ``$ENVKIT_HOME``, a test's temporary home): nothing could reach or stop them then.
    """
    fd = os.pidfd_open(holder_pid)
    folder = state.root()
    poll = select.poll()  # not select(): descriptors may pass 1023 (the limit is raised)
    poll.register(fd, select.POLLIN)
    while not poll.poll(HOME_CHECK_SECONDS * 1000):
        if not folder.is_dir():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            break
    os._exit(0)


def main(argv: list[str]) -> None:
    """The daemon's life: join, start the netlink worker, listen, say ``ok PID`` on the
    status fd, serve."""
    holder_pid, status = int(argv[1]), int(argv[2])
    os.set_inheritable(status, False)  # the caller's, not the netlink worker's
    try:
        # setns(CLONE_NEWUSER) needs a single-threaded process: first thing, before any
        # import that might start a thread. Not as the namespace's root: the daemon keeps
        # the caller's uid, so it can read the caller's files (a 0700 home, as root).
        ns.join_userns(holder_pid, become_root=False)
        # Its netlink worker is forked now (single-threaded still): it imports pyroute2
        # while this process and its caller set up the rest.
        daemon = Daemon(holder_pid)
        listeners = egress.listeners_in(holder_pid)
        server = control.listen()
    except BaseException as exc:
        message = str(exc) if isinstance(exc, NetworkError | OSError) else repr(exc)
        os.write(status, b"err " + message.encode(errors="replace") + b"\n")
        raise
    threading.Thread(target=_exit_with, args=(holder_pid,), daemon=True).start()
    _raise_descriptor_limit()
    egress.serve_in_threads(listeners)
    os.write(status, b"ok %d\n" % os.getpid())
    os.close(status)

    def serve(conn: socket.socket, _peer: str) -> None:
        try:
            threading.Thread(target=daemon.handle, args=(conn,), daemon=True).start()
        except RuntimeError:  # no thread to be had now: the caller gets an error
            conn.close()

    relay.accept_forever(server, serve)


def _raise_descriptor_limit() -> None:
    """Raise the soft limit on open descriptors to the hard one, as Go programs (podman's
    rootlessport, docker) do: each relayed connection holds six, and a soft limit of
    1024 would end at ~170 connections for every container of the home."""
    import resource  # lazy: only here

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    main(sys.argv)
