"""The netlink worker: the network daemon's netlink work, in a child process that lives
only while there is some.

``python -m envkit.network.netlink_worker DAEMON_PID SOCKET_FD NETNS_FD``, started by
the network daemon (:mod:`envkit.network.netlink_client`). It imports pyroute2 (without
its package ``__init__``: :func:`load_pyroute2_lightly`), serves the daemon's
``setup``, ``bridge``, ``remove_link``, ``link_names`` and ``attach`` requests through
:mod:`envkit.network.netops`, one at a time, and exits when the daemon closes its end
of the socket (the daemon does after :data:`~envkit.network.netlink_client.IDLE_SECONDS`
without a request) or dies. A running stack's daemon thus holds no pyroute2 (~10 MB).

The socket is one end of a ``SOCK_SEQPACKET`` socket pair: the first message is the
worker's greeting (``{"ok": PID}`` once it serves, or ``{"error": text}``), then each
request is ``{"op": NAME, "args": {...}}`` with descriptors beside it (an attached
container's netns), answered with ``{"ok": value}`` or ``{"error": text, "hint": text}``:
the messages of the daemon's control socket (:mod:`envkit.network.control`), in the same
words. ``NETNS_FD`` is the holder's network namespace, opened by the daemon.

The daemon's first worker is forked, not exec'd: the daemon forks it at its start, while
it is still single-threaded, and the child goes on at :func:`run` with everything but
pyroute2 imported already (an exec'd worker would first pay an interpreter and envkit's
imports, ~35 ms, on the path of a cold ``up``). Later workers are exec'd (the daemon has
threads then). Either way the worker is the daemon's child, so it is in the holder's
user namespace; an exec'd one keeps its capabilities there (``CAP_NET_ADMIN``,
``CAP_SYS_ADMIN`` for ``setns``) as ambient capabilities the daemon raised (the
daemon's uid is not root in that namespace when the host's root runs it, and
``execve`` drops a non-root uid's capabilities). It dies with the daemon: the kernel
sends it ``SIGKILL`` then (``PR_SET_PDEATHSIG``), and it checks that the daemon had not
died before that was set.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import types
from collections.abc import Callable, Mapping

from envkit.errors import NetworkError
from envkit.host.prctl import PR_SET_PDEATHSIG, prctl
from envkit.network import control

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from envkit.network.netops import Holder

    Handler = Callable[[dict[str, Any], list[int]], Any]

#: Descriptors one request may carry (``attach``: the container's network namespace).
MAX_FDS = 1


def load_pyroute2_lightly() -> None:
    """Let ``import pyroute2.X`` skip the package's ``__init__``.

    That ``__init__`` only re-exports, importing every pyroute2 family (NDB, IPDB,
    conntrack, nftables, wireless...): 40% of the import's time and ~6 MB of memory,
    none of it used here. A plain package module with pyroute2's path stands in for it;
    the submodules import each other by their full names. Nothing changes where pyroute2
    was imported already, or cannot be found.
    """
    if "pyroute2" in sys.modules:
        return
    import importlib.util  # lazy: only the worker, never the daemon that forks it

    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("pyroute2")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules["pyroute2"] = package


def handlers(links: Holder) -> dict[str, Handler]:
    """The requests the worker answers, by ``op``, acting on ``links``."""

    def attach(args: dict[str, Any], fds: list[int]) -> None:
        if len(fds) != 1:
            raise NetworkError("attach needs the container's network namespace")
        links.attach(fds[0], args)

    return {
        "setup": lambda args, fds: links.setup(args["bridges"]),
        "bridge": lambda args, fds: links.bridge(**args),
        "remove_link": lambda args, fds: links.remove_link(args["name"]),
        "link_names": lambda args, fds: links.link_names(),
        "attach": attach,
    }


def serve(conn: socket.socket, table: Mapping[str, Handler]) -> None:
    """Answer requests on ``conn``, one at a time, until the daemon closes it."""
    while True:
        try:
            request, fds = control.receive(conn, MAX_FDS)
        except (EOFError, ConnectionError):
            return
        except ValueError as exc:
            control.send(conn, {"error": f"bad request to the network daemon: {exc!r}"})
            continue
        try:
            reply = control.reply_of(_dispatch, table, request, fds)
        finally:
            for fd in fds:
                os.close(fd)
        control.send(conn, reply)


def _dispatch(table: Mapping[str, Handler], request: dict[str, Any], fds: list[int]) -> Any:
    return table[request["op"]](request.get("args", {}), fds)


def stay_with(parent: int) -> None:
    """Die with the process ``parent`` (our parent): ``SIGKILL`` from the kernel when it
    exits, or exit now if it did so already (we were re-parented before the prctl)."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def run(parent: int, conn: socket.socket, netns: int) -> NoReturn:
    """The worker's life once started (exec'd, or forked by the daemon while it was
    single-threaded): stay with ``parent``, import, greet, serve, exit."""
    stay_with(parent)
    try:
        load_pyroute2_lightly()
        from envkit.network import netops  # lazy: pyroute2, after load_pyroute2_lightly

        table = handlers(netops.Holder(netns))
    except BaseException as exc:
        message = str(exc) if isinstance(exc, NetworkError | OSError) else repr(exc)
        with contextlib.suppress(OSError):
            control.send(conn, {"error": f"the netlink worker failed to start: {message}"})
        sys.__excepthook__(type(exc), exc, exc.__traceback__)  # no traceback module
        os._exit(1)
    try:
        control.send(conn, {"ok": os.getpid()})
    except OSError:  # let go before it served (the daemon's idle time passed, or it died)
        os._exit(0)
    serve(conn, table)
    # Not a normal exit: pyroute2's threads need not be joined, nothing is left to flush.
    os._exit(0)


def main(argv: list[str]) -> NoReturn:
    """``python -m envkit.network.netlink_worker DAEMON_PID SOCKET_FD NETNS_FD``."""
    parent, sock_fd, netns = int(argv[1]), int(argv[2]), int(argv[3])
    run(parent, socket.socket(fileno=sock_fd), netns)


if __name__ == "__main__":
    main(sys.argv)
