"""A stand-in container: a command in its own network namespace, networked by envkit.

Until the runtime joins the holder's user namespace itself, this is what the tests and
benchmarks run as "containers", and it shows the order the runtime must follow:

1. :func:`envkit.network.prepare` gives the holder's pid;
2. the child joins the holder's user namespace and unshares a network and a mount
   namespace (both then belong to the holder's user namespace), and waits;
3. the parent connects it (:func:`envkit.network.connect` with the child's pid);
4. the child bind-mounts the managed hosts file and resolv.conf and execs the command.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from types import TracebackType

from envkit.errors import ChildError, NetworkError
from envkit.host import syscalls
from envkit.host.forking import start_child
from envkit.network import containers, endpoints, names, ns
from envkit.network.state import Endpoint


class Sandbox:
    """``argv`` run as container ``name`` on ``networks`` (first one: default route)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        networks: Sequence[str],
        aliases: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        if not networks:
            raise NetworkError("a sandbox needs at least one network")
        self.name = name
        self.endpoints: list[Endpoint] = []
        holder_pid = containers.prepare()

        def connect(pid: int) -> None:
            for network in networks:
                self.endpoints.append(endpoints.connect(network, name, pid, aliases))

        try:
            self.pid = start_child(
                _exec_networked,
                name,
                list(argv),
                env if env is not None else dict(os.environ),
                what=f"sandbox {name}",
                setup=lambda: _own_namespaces(holder_pid),
                parent_step=connect,
            )
        except ChildError as exc:
            self._disconnect()
            raise NetworkError(f"sandbox {name}: {exc.message}") from None
        except BaseException:
            self._disconnect()
            raise

    @property
    def ip(self) -> str:
        """Address on the first network."""
        return self.endpoints[0].ip

    def kill(self) -> int:
        """Kill the command (its netns and veths go with it); its wait status."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return 0

    def stop(self) -> None:
        """Kill the command and disconnect it from its networks."""
        self.kill()
        self._disconnect()

    def _disconnect(self) -> None:
        for ep in self.endpoints:
            with contextlib.suppress(NetworkError):
                endpoints.disconnect(ep.network, ep.container)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _own_namespaces(holder_pid: int) -> None:  # pragma: no cover - runs in the child
    """Join the holder's user namespace, then new network and mount namespaces (owned by
    it, so the holder can move a veth in)."""
    ns.join_userns(holder_pid, become_root=False)
    syscalls.unshare(syscalls.CLONE_NEWNET | syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)


def _exec_networked(
    name: str, argv: list[str], env: dict[str, str]
) -> None:  # pragma: no cover - runs in the child, once connected
    for path, target in (
        (names.hosts_path(name), "/etc/hosts"),
        (names.resolv_path(name), "/etc/resolv.conf"),
    ):
        syscalls.mount(str(path), target, None, syscalls.MS_BIND)
    os.execve(argv[0], argv, env)
