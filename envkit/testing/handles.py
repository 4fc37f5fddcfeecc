"""What service and stack fixtures yield: where a service is reached and how to use it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envkit.errors import EnvkitError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.container.handle import ExecResult
    from envkit.recipes import Recipe
    from envkit.stack.api import RunningService, RunningStack
    from envkit.testing.databases import DatabasePool

#: Published ports are bound on the loopback address only.
HOST = "127.0.0.1"


class ServiceHandle:
    """A running service of a fixture: ``host``, ``port(p)``, ``url``, ``exec``, ``logs``.

    For a :class:`~envkit.recipes.Recipe` ``port()`` with no argument is the port its
    clients use and ``url`` its connection URL.
    """

    host = HOST

    def __init__(self, running: RunningService, recipe: Recipe | None = None) -> None:
        self.running = running
        self.recipe = recipe
        self._pool: DatabasePool | None = None

    @property
    def name(self) -> str:
        """The service's name in its stack."""
        return self.running.name

    @property
    def stack(self) -> str:
        """The name of the stack the service runs in (``envkit stack ps -p NAME``)."""
        return self.running.stack

    def port(self, container_port: int | None = None, protocol: str = "tcp") -> int:
        """The host port ``container_port`` is published on (default: the recipe's)."""
        if container_port is None:
            if self.recipe is None:
                raise EnvkitError(
                    f"service {self.name!r} is not a recipe: port() needs the container port",
                    hint=f"e.g. {self.name}.port(8080)",
                )
            container_port = self.recipe.port
        return self.running.port(container_port, protocol)

    @property
    def url(self) -> str:
        """The recipe's connection URL (``postgresql://user:pw@127.0.0.1:PORT/db``)."""
        if self.recipe is None:
            raise EnvkitError(
                f"service {self.name!r} is not a recipe, so it has no connection URL",
                hint='build one from its port: f"http://{svc.host}:{svc.port(80)}/"',
            )
        return self.recipe.url(self.host, self.port())

    def exec(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in the service's container: its exit code and output."""
        return self.running.exec(cmd, env=env, user=user, workdir=workdir)

    def exec_raw(self, cmd: Sequence[str], stdio: tuple[int, int, int]) -> int:
        """Run ``cmd`` with host fds ``stdio`` as its stdin, stdout and stderr; its
        exit code."""
        return self.running.exec(cmd, stdio=stdio).exit_code

    def logs(self) -> str:
        """Everything the service wrote so far."""
        return self.running.logs()

    def databases(self) -> DatabasePool:
        """Fresh databases on this server (a recipe with SQL databases only)."""
        if self._pool is None:
            from envkit.testing.databases import DatabasePool  # lazy: recipes with databases

            self._pool = DatabasePool(self)
        return self._pool

    def close(self, *, drain: bool = True) -> None:
        """Stop making databases (the service fixture's teardown calls this);
        ``drain``: drop those asked for first."""
        if self._pool is not None:
            self._pool.close(drain=drain)
            self._pool = None

    def reach(self) -> str:
        """One line telling a person how to reach the service."""
        ports = ", ".join(
            f"{p.container_port}/{p.protocol} -> {HOST}:{p.host_port}"
            for p in self.running.container().ports()
        )
        text = f"{self.name} ({ports or 'no published ports'})"
        return text + (f" {self.url}" if self.recipe is not None else "")

    def __repr__(self) -> str:
        return f"<ServiceHandle {self.stack}/{self.name}>"


class StackHandle:
    """A running stack of a fixture: ``handle["svc"]`` is a :class:`ServiceHandle`."""

    def __init__(self, running: RunningStack, recipes: Mapping[str, Recipe]) -> None:
        self.running = running
        self._recipes = dict(recipes)

    @property
    def name(self) -> str:
        """The stack's name (``envkit stack ps -p NAME``)."""
        return self.running.name

    def __getitem__(self, service: str) -> ServiceHandle:
        return ServiceHandle(self.running[service], self._recipes.get(service))

    def logs(self) -> str:
        """The output of every service, each line prefixed with ``service |``."""
        return self.running.logs()

    def reach(self) -> str:
        """How to reach each service, one per line."""
        return "\n".join(self[s.name].reach() for s in self.running.stack.services)

    def __repr__(self) -> str:
        return f"<StackHandle {self.name}>"
