"""The network daemon: one long-lived process per ``$ENVKIT_HOME`` beside the holder.

``python -m envkit.network.netd HOLDER_PID STATUS_FD`` (started by
:func:`envkit.network.control.spawn`). It joins the holder's user namespace, imports
pyroute2 once, and then serves, until the holder dies:

- requests on its control socket (``$ENVKIT_HOME/network/netd.sock``, a
  ``SOCK_SEQPACKET`` unix socket: one JSON object per message, descriptors beside it
  with ``SCM_RIGHTS``; a reply ``{"ok": value}`` or ``{"error": text}``), dispatched
  through :data:`HANDLERS`, never unpickled: bridges, veth pairs, addresses, routes
  (:mod:`envkit.network.netops`), and published ports;
- egress: the transparent TCP proxy and the DNS relay (:mod:`envkit.network.egress`);
- published ports of every container: the host sockets the commands bound arrive with
  a ``publish`` request and are relayed into the holder's namespace (one thread per
  listener, two per connection; :mod:`envkit.network.relay`).

The state (networks, endpoints, addresses, hosts files) stays on disk, changed by the
commands under the state lock; the daemon only executes. See docs/dev/network.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback
import types
from collections.abc import Callable
from typing import Any

from envkit.errors import NetworkError
from envkit.host import syscalls
from envkit.network import control, egress, ns, ports, relay, state

#: Descriptors one request may carry (a container's netns, its published sockets).
MAX_FDS = 64
#: Seconds between two checks that the home still exists.
HOME_CHECK_SECONDS = 10.0


class Daemon:
    """What the handlers act on: the holder's netlink, its namespace, the forwarders."""

    def __init__(self, holder_pid: int) -> None:
        from envkit.network import netops  # pyroute2: here, once, in this process only

        self.holder_pid = holder_pid
        self.links = netops.Holder(holder_pid)
        #: Published listeners per container.
        self.published: dict[str, list[socket.socket]] = {}
        self.lock = threading.Lock()

    # -- handlers: (args, fds) -> a JSON value -------------------------------------------

    def ping(self, args: dict[str, Any], fds: list[int]) -> Any:
        return os.getpid()

    def setup(self, args: dict[str, Any], fds: list[int]) -> Any:
        self.links.setup(args["bridges"])
        return None

    def bridge(self, args: dict[str, Any], fds: list[int]) -> Any:
        self.links.bridge(**args)
        return None

    def remove_link(self, args: dict[str, Any], fds: list[int]) -> Any:
        self.links.remove_link(args["name"])
        return None

    def link_names(self, args: dict[str, Any], fds: list[int]) -> Any:
        return self.links.link_names()

    def attach(self, args: dict[str, Any], fds: list[int]) -> Any:
        if len(fds) != 1:
            raise NetworkError("attach needs the container's network namespace")
        self.links.attach(fds[0], args)
        return None

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
        fd = self.links.netns

        def run() -> None:
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
            fn(*args)

        threading.Thread(target=run, daemon=True, name="envkit-forward").start()

    def handle(self, conn: socket.socket) -> None:
        """One request on ``conn``, answered, then ``conn`` closed."""
        fds: list[int] = []
        try:
            data, fds, _, _ = socket.recv_fds(conn, control.MAX_MESSAGE, MAX_FDS)
            try:
                request = json.loads(data)
                handler = HANDLERS[request["op"]]
                reply: dict[str, Any] = {"ok": handler(self, request.get("args", {}), fds)}
            except NetworkError as exc:
                reply = {"error": exc.message, "hint": exc.hint}
            except (KeyError, ValueError, TypeError) as exc:
                reply = {"error": f"bad request to the network daemon: {exc!r}"}
            except OSError as exc:
                reply = {"error": f"{exc.strerror or exc} (errno {exc.errno})"}
            except Exception as exc:  # a bug: said, and logged with its traceback
                traceback.print_exc()
                reply = {"error": f"the network daemon failed: {exc!r}"}
            conn.send(json.dumps(reply).encode())
        except OSError:
            pass
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()


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
    "setup": Daemon.setup,
    "bridge": Daemon.bridge,
    "remove_link": Daemon.remove_link,
    "link_names": Daemon.link_names,
    "attach": Daemon.attach,
    "publish": Daemon.publish,
    "unpublish": Daemon.unpublish,
}


def load_pyroute2_lightly() -> None:
    """Let ``import pyroute2.X`` skip the package's ``__init__``.

    That ``__init__`` only re-exports, importing every pyroute2 family (NDB, IPDB,
    conntrack, nftables, wireless...): 40% of the import's time and ~6 MB of the
    daemon's memory, none of it used here. A plain package module with pyroute2's path
    stands in for it; the submodules import each other by their full names. Nothing
    changes where pyroute2 was imported already, or cannot be found.
    """
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("pyroute2")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules["pyroute2"] = package


def _exit_with(holder_pid: int) -> None:
    """Exit when the holder does: its namespaces, and so everything served, are gone.

    Also end both when the home's network directory is gone (a removed
    ``$ENVKIT_HOME``, a test's temporary home): nothing could reach or stop them then.
    """
    fd = os.pidfd_open(holder_pid)
    folder = state.root()
    while not select.select([fd], [], [], HOME_CHECK_SECONDS)[0]:
        if not folder.is_dir():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            break
    os._exit(0)


def main(argv: list[str]) -> None:
    """The daemon's life: join, import, listen, say ``ok PID`` on the status fd, serve."""
    holder_pid, status = int(argv[1]), int(argv[2])
    try:
        # setns(CLONE_NEWUSER) needs a single-threaded process: first thing, before any
        # import that might start a thread. Not as the namespace's root: the daemon keeps
        # the caller's uid, so it can read the caller's files (a 0700 home, as root).
        ns.join_userns(holder_pid, become_root=False)
        load_pyroute2_lightly()
        daemon = Daemon(holder_pid)
        listeners = egress.listeners_in(holder_pid)
        server = control.listen()
    except BaseException as exc:
        message = str(exc) if isinstance(exc, NetworkError | OSError) else repr(exc)
        os.write(status, b"err " + message.encode(errors="replace") + b"\n")
        raise
    threading.Thread(target=_exit_with, args=(holder_pid,), daemon=True).start()
    egress.serve_in_threads(listeners)
    os.write(status, b"ok %d\n" % os.getpid())
    os.close(status)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=daemon.handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv)
