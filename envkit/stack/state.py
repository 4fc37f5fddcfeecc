"""A stack's state on disk, so that ``down``, ``ps``, ``logs`` and ``exec`` work from any
process and the next command cleans up after a killed supervisor.

Layout under ``$ENVKIT_HOME/stacks/<name>/``::

    state.json      :class:`StackState`, replaced atomically (never a secret value)
    logs/<svc>      json-lines output of the service's earlier containers (restarts)

``$ENVKIT_HOME/stacks/.locks/<name>`` is the flock that lets one ``up`` or ``down`` of a
stack run at a time. Secret files live elsewhere, in a private dir on a tmpfs
(:mod:`envkit.stack.secrets`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from envkit.errors import EnvkitError
from envkit.runtime.state import alive, process_start

STARTING, RUNNING, STOPPING, FAILED = "starting", "running", "stopping", "failed"


@dataclass
class ServiceState:
    """One service: its current container and what the supervisor saw of it."""

    container: str = ""  #: container id ("" before the first start)
    container_name: str = ""
    image_id: str = ""
    status: str = "created"  #: created, running, restarting, exited
    health: str = ""  #: "" (no check), starting, healthy, unhealthy
    health_output: str = ""
    restarts: int = 0
    exit_code: int | None = None
    ports: list[str] = field(default_factory=list)


@dataclass
class StackState:
    """One stack (``state.json``)."""

    name: str
    file: str = ""
    status: str = STARTING
    error: str = ""
    created: float = field(default_factory=time.time)
    supervisor: int = 0
    supervisor_start: int = 0
    #: Where the secret files are (a path, never a value); "" when none.
    secrets_dir: str = ""
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    services: dict[str, ServiceState] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        """``$ENVKIT_HOME/stacks/<name>``."""
        return stack_dir(self.name)

    @property
    def supervised(self) -> bool:
        """Whether the process that holds the stack's containers is alive."""
        return alive(self.supervisor, self.supervisor_start)

    def claim(self) -> None:
        """Record the calling process as the stack's supervisor."""
        self.supervisor, self.supervisor_start = os.getpid(), process_start(os.getpid()) or 0

    def save(self) -> None:
        """Write ``state.json`` atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".state.{os.getpid()}.{time.monotonic_ns()}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, self.dir / "state.json")

    def log_path(self, service: str) -> Path:
        """The archived output of the service's earlier containers."""
        return self.dir / "logs" / service


def stacks_dir() -> Path:
    """Where every stack's dir lives."""
    from envkit.settings import home

    return home() / "stacks"


def stack_dir(name: str) -> Path:
    """The dir of stack ``name``."""
    return stacks_dir() / name


def load(name: str) -> StackState | None:
    """The state of stack ``name``; ``None`` if it is not up."""
    try:
        with open(stack_dir(name) / "state.json") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        raise EnvkitError(
            f"cannot read the state of stack {name!r}: {exc}",
            hint=f"`envkit down -p {name}` cleans it up",
        ) from None
    services = {k: _service(v) for k, v in data.pop("services", {}).items()}
    known = StackState.__dataclass_fields__
    return StackState(services=services, **{k: v for k, v in data.items() if k in known})


def require(name: str) -> StackState:
    """The state of stack ``name``, or an error saying it is not up."""
    found = load(name)
    if found is None:
        raise EnvkitError(f"stack {name!r} is not up", hint="start it with `envkit up`")
    return found


def all_stacks() -> list[StackState]:
    """Every stack with a state on disk, by name."""
    top = stacks_dir()
    if not top.is_dir():
        return []
    found = (
        load(p.name) for p in sorted(top.iterdir()) if p.is_dir() and not p.name.startswith(".")
    )
    return [s for s in found if s is not None]


def _service(data: dict[str, object]) -> ServiceState:
    known = ServiceState.__dataclass_fields__
    return ServiceState(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


@contextmanager
def locked(name: str, timeout: float = 600) -> Iterator[None]:
    """Hold the stack's lock: one ``up`` or ``down`` of it at a time, across processes."""
    from envkit.store.locks import lock_for

    path = stacks_dir() / ".locks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock_for(path).exclusive(timeout):
        yield
