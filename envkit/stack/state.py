"""A stack's state on disk, so that ``down``, ``ps``, ``logs`` and ``exec`` work from any
process and the next command cleans up after a killed supervisor.

Layout under ``$ENVKIT_HOME/stacks/<name>/``::

    state.json      :class:`StackState`, replaced atomically (never a secret value)
    logs/<svc>      json-lines output of the service's containers (restarts included),
                    rotated to <svc>.1, <svc>.2 (:mod:`envkit.stack.logs`)
    control.sock    the supervisor's socket (:mod:`envkit.stack.control`), 0600 in
                    this 0700 dir

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
from pathlib import Path

from envkit.errors import EnvkitError
from envkit.oci.types import canonical_json
from envkit.records import Record, asdict, field
from envkit.runtime.state import alive, process_start
from envkit.settings import private_dir
from envkit.store.locks import lock_for

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.spec import Stack

STARTING, RUNNING, STOPPING, FAILED = "starting", "running", "stopping", "failed"


class ServiceState(Record):
    """One service: its current container and what the supervisor saw of it."""

    container: str = ""  #: container id ("" before the first start)
    container_name: str = ""
    image_id: str = ""
    status: str = "created"  #: created, running, restarting, exited, stopped
    health: str = ""  #: "" (no check), starting, healthy, unhealthy
    health_output: str = ""
    ready: str = ""  #: "" (no ``ready`` probes), waiting, ready, failed
    ready_output: str = ""
    #: When the current container started (RFC 3339, the log records' format).
    started_at: str = ""
    #: sha256 of the service's canonical form and image id: what ``up`` compares to
    #: recreate only the services that changed.
    spec_key: str = ""
    restarts: int = 0
    #: The restart backoff now (seconds, docker's; 0: none): a supervisor that takes
    #: the stack over goes on doubling it.
    backoff: float = 0.0
    exit_code: int | None = None
    ports: list[str] = field(default_factory=list)
    #: The named volumes its backends mounted for the current container, as
    #: ``[backend, volume, mount id]``: whoever holds the container next (a supervisor
    #: that takes over, or resumes after its hold phase) tells the backends it is gone.
    mounts: list[list[str]] = field(default_factory=list)


class StackState(Record):
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
    #: Those of ``volumes`` that are compose's anonymous volumes: ``down`` removes them.
    anonymous_volumes: list[str] = field(default_factory=list)
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
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.dir / f".state.{os.getpid()}.{time.monotonic_ns()}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, self.dir / "state.json")

    def log_path(self, service: str) -> Path:
        """The output of the service's containers (the current file of its log)."""
        return self.dir / "logs" / service

    @property
    def control_path(self) -> Path:
        """The supervisor's control socket."""
        return self.dir / "control.sock"


def spec_key(stack: Stack, service: str, image: str) -> str:
    """What makes ``up`` recreate a service's container when it changes: its canonical
    form (with the networks it joins and their definitions), the variables it gets
    from env files, and the id of its image (a reference is resolved in the store)."""
    # lazy: only `up` compares services; environment imports the spec. The digest is
    # the interpreter's own SHA-256: hashlib would load OpenSSL (~1.3 MB) into a
    # supervisor for this one small hash.
    from envkit.oci.digest import sha256_bytes
    from envkit.stack import environment

    canonical = stack.canonical()
    body = canonical["services"][service]
    networks = {n: canonical["networks"].get(n) for n in body["networks"]}
    try:
        env = environment.service_env(stack, service)
    except EnvkitError:
        env = {}
    data = {"service": body, "networks": networks, "env": env, "image": _image_id(image)}
    return sha256_bytes(canonical_json(data))


def _image_id(image: str) -> str:
    from envkit.store.store import Store  # lazy: the store stays off `down`

    try:
        return str(Store.default().resolve(image))
    except EnvkitError:
        return image


def stacks_dir() -> Path:
    """Where every stack's dir lives."""
    return Path(private_dir("stacks"))


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
    return from_dict(data)


def from_dict(data: dict[str, object]) -> StackState:
    """A :class:`StackState` from its JSON form (unknown fields ignored)."""
    raw = data.get("services")
    services = {k: _service(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    known = StackState.FIELDS
    fields = {k: v for k, v in data.items() if k in known and k != "services"}
    return StackState(services=services, **fields)  # type: ignore[arg-type]


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
    known = ServiceState.FIELDS
    return ServiceState(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


@contextmanager
def locked(name: str, timeout: float = 600) -> Iterator[None]:
    """Hold the stack's lock: one ``up`` or ``down`` of it at a time, across processes."""
    path = stacks_dir() / ".locks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock_for(path).exclusive(timeout):
        yield
