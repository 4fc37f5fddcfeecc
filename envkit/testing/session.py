"""The stacks one pytest process started: unique names, start, tear-down or keep."""

from __future__ import annotations

import os
import re

from envkit.testing.plugin import SESSION_KEY, Options

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import pytest

    from envkit.spec import Stack
    from envkit.stack.api import RunningStack

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def worker_id() -> str:
    """The pytest-xdist worker this process is (``gw0``, ...), ``main`` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


class ServiceSession:
    """Every stack the fixtures of one pytest process brought up.

    Stack names carry the fixture, the xdist worker and the pid, so parallel workers
    and concurrent pytest runs never collide on a name (and ports are always picked
    free by the kernel). A stack is owned by this process unless ``--envkit-keep``:
    its supervisor tears it down when pytest exits, even after kill -9.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self.kept: list[str] = []
        self._up: dict[str, RunningStack] = {}
        self._counter = 0

    @classmethod
    def of(cls, config: pytest.Config) -> ServiceSession:
        """The session of ``config``, created on first use."""
        session = config.stash.get(SESSION_KEY, None)
        if session is None:
            session = config.stash[SESSION_KEY] = cls(Options.from_config(config))
        return session

    def stack_name(self, fixture: str) -> str:
        """A stack name no other fixture, worker or pytest run uses."""
        self._counter += 1
        slug = _SLUG_RE.sub("-", fixture.lower()).strip("-")[:20] or "svc"
        suffix = f"-{self._counter}" if self._counter > 1 else ""
        return f"pt-{slug}-{worker_id()}-{os.getpid()}{suffix}"

    def up(self, stack: Stack) -> RunningStack:
        """Build what is missing and start ``stack``; return once it is ready.

        A failure raises the :class:`~envkit.errors.EnvkitError` of ``up``: which
        service was not ready, its last health check output and its last log lines.
        """
        from envkit.stack.api import up  # lazy for start-up: the stack layer, downward

        running = up(stack, timeout=self.options.timeout, owned=not self.options.keep)
        self._up[stack.name] = running
        return running

    def finish(self, name: str, *, failed: bool, reach: str = "") -> None:
        """Tear stack ``name`` down, or keep it (``--envkit-keep`` and ``failed``) and
        remember ``reach``, how to use it, for the summary."""
        running = self._up.pop(name, None)
        if running is None:
            return
        if self.options.keep and failed:
            self.kept.append(self._keep_note(name, reach))
            return
        running.down(volumes=True)

    def close(self) -> None:
        """Tear down every stack still up (after an interrupted run)."""
        for name in list(self._up):
            self.finish(name, failed=False)

    def _keep_note(self, name: str, reach: str) -> str:
        home = os.environ.get("ENVKIT_HOME", "")
        prefix = f"ENVKIT_HOME={home} " if home else ""
        lines = [f"stack {name}: {reach}".rstrip(": ")]
        lines.append(f"  status: {prefix}envkit stack ps -p {name}")
        lines.append(f"  logs:   {prefix}envkit stack logs -p {name}")
        lines.append(f"  remove: {prefix}envkit down -v -p {name}")
        return "\n".join(lines)
