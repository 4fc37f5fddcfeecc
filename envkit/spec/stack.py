"""``Stack``: the services of a project and the volumes, networks and secrets they use."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Never

from envkit.errors import SpecError
from envkit.records import Frozen, field
from envkit.spec import validate
from envkit.spec.canonical import SpecObject, versioned
from envkit.spec.engine import engine
from envkit.spec.network import DEFAULT_NETWORK, Network
from envkit.spec.secret import Secret
from envkit.spec.service import Service
from envkit.spec.volume import Volume

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Self

    from envkit.compose.export_model import ExportResult
    from envkit.stack.api import RunningStack

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Stack(Frozen, SpecObject):
    """A named set of services, validated as a whole.

    ``services`` are stored sorted by name. ``volumes`` and ``networks`` hold those given
    here plus every one a service uses; a service that names no network joins the
    network ``"default"``, which the stack then holds (as in compose). ``base_dir`` is
    the directory relative paths are resolved against: set by the stack-file loader,
    ``None`` for a Stack built in code (the current directory applies). It is not part of
    equality or of the canonical form.
    """

    name: str
    services: tuple[Service, ...]
    volumes: tuple[Volume, ...]
    networks: tuple[Network, ...]
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    def __init__(
        self,
        name: str,
        services: Sequence[Service] = (),
        volumes: Sequence[Volume] = (),
        networks: Sequence[Network | str] = (),
        **unknown: Never,
    ) -> None:
        owner = f"Stack({name!r})"
        validate.reject_unknown(owner, unknown, Stack.__init__)
        if not isinstance(name, str) or not _PROJECT_RE.match(name):
            raise SpecError(
                f"{owner}.name",
                "invalid stack name",
                value=name,
                hint="use lowercase letters, digits, '-' and '_', starting with a letter or digit",
            )
        found = _services(f"{owner}.services", services)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "services", found)
        object.__setattr__(self, "volumes", _volumes(owner, volumes, found))
        object.__setattr__(self, "networks", _networks(owner, networks, found))
        object.__setattr__(self, "base_dir", None)
        _check_dependencies(owner, found)
        _check_ports(owner, found)

    # -- look-ups ----------------------------------------------------------------------

    def __getitem__(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(f"stack {self.name!r} has no service {name!r}")

    def __contains__(self, name: object) -> bool:
        return any(s.name == name for s in self.services)

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """Every secret the services mount or their image builds use, by name."""
        found: dict[str, Secret] = {}
        for service in self.services:
            found.update((s.name, s) for s in (*service.image.secrets, *service.secrets))
        return tuple(found[n] for n in sorted(found))

    def service_networks(self, name: str) -> tuple[Network, ...]:
        """The networks service ``name`` joins (``"default"`` when it names none)."""
        service = self[name]
        if service.network_mode is not None:
            return ()
        if service.networks:
            return service.networks
        return tuple(n for n in self.networks if n.name == DEFAULT_NETWORK)

    def start_order(self) -> list[str]:
        """Service names so that each comes after everything it depends on."""
        order: list[str] = []
        done: set[str] = set()

        def visit(service: Service) -> None:
            if service.name in done:
                return
            done.add(service.name)
            for target, _ in service.depends_on:
                visit(self[target])
            order.append(service.name)

        for service in self.services:
            visit(service)
        return order

    def up(self, *services: str, timeout: float = 300.0, pull: str = "missing") -> RunningStack:
        """Build and start the stack (or ``services`` and what they depend on); return
        once every service runs and those with a health check are healthy. An image
        reference that is not in the store is pulled first (``pull``: docker compose's
        ``--pull``, ``"missing"``, ``"always"`` or ``"never"``).

        Use it as a context manager: the stack goes down on exit (volumes are kept),
        and also when the calling process exits::

            with stack.up() as running:
                running["web"].port(5000)
                running["db"].exec(["pg_isready"])
        """
        return engine().up(self, services, timeout=timeout, pull=pull)

    @classmethod
    def from_compose(
        cls,
        path: str | os.PathLike[str] = "compose.yaml",
        *,
        environ: Mapping[str, str] | None = None,
        profiles: Sequence[str] | None = None,
    ) -> Stack:
        """The Stack of a compose file, read as ``docker compose`` reads it.

        Variables are interpolated from ``environ`` (default: the process environment)
        and the ``.env`` beside the file; ``profiles`` replaces ``COMPOSE_PROFILES``.
        Keys envkit ignores are reported as :class:`envkit.compose.ComposeWarning`
        warnings; keys it cannot honour raise :class:`~envkit.errors.StackFileError`
        naming the file and line. See docs/reference/compose.md.
        """
        return engine().load_compose(path, environ=environ, profiles=profiles, stacklevel=3)

    def export(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        format: str = "kubernetes",
        push: str | None = None,
        namespace: str | None = None,
        expose: str = "clusterip",
        strict: bool = False,
        wait_image: str = "busybox:latest",
    ) -> ExportResult:
        """Write this stack for another engine: ``format="kubernetes"`` (one file per
        object and a README, apps/v1 and v1 only) or ``"compose"`` (a compose.yaml),
        every image named by digest. ``push="REGISTRY[/PREFIX]"`` builds and pushes
        the images the stack builds; without it they are an error. What the format
        cannot express is in ``.warnings`` (``strict=True``: an error). See
        docs/reference/export.md::

            stack.export("k8s/", format="kubernetes", push="registry.example.org/team")
        """
        return engine().export(
            self,
            directory,
            format=format,
            push=push,
            namespace=namespace,
            expose=expose,
            strict=strict,
            wait_image=wait_image,
        )

    def with_base_dir(self, base_dir: str | os.PathLike[str]) -> Self:
        """This stack with relative paths resolved against ``base_dir`` (made absolute)."""
        clone = copy.copy(self)
        object.__setattr__(clone, "base_dir", Path(base_dir).absolute())
        return clone

    def canonical(self) -> dict[str, Any]:
        """Services, volumes, networks and secrets by name (secrets by source only).

        Each service's ``networks`` lists what it actually joins (``["default"]`` when
        it named none).
        """
        services = {}
        for service in self.services:
            body = service.canonical()
            body["networks"] = [n.name for n in self.service_networks(service.name)]
            services[service.name] = body
        return versioned(
            "stack",
            {
                "name": self.name,
                "services": services,
                "volumes": {v.name: v.canonical() for v in self.volumes},
                "networks": {n.name: n.canonical() for n in self.networks},
                "secrets": {s.name: s.canonical() for s in self.secrets},
            },
        )


def _services(field: str, value: object) -> tuple[Service, ...]:
    if isinstance(value, Service) or not isinstance(value, Sequence):
        raise SpecError(field, "expected a list of Service", hint="services=[web, db]")
    if not value:
        raise SpecError(field, "a stack needs at least one service", hint="services=[web]")
    by_name: dict[str, Service] = {}
    for item in value:
        if not isinstance(item, Service):
            raise SpecError(field, f"expected a Service, not {type(item).__name__}", value=item)
        if item.name in by_name and by_name[item.name] != item:
            raise SpecError(
                field,
                f"two different services are named {item.name!r}",
                hint="service names must be unique in a stack",
            )
        by_name[item.name] = item
    return tuple(by_name[n] for n in sorted(by_name))


def _unique_by_name(field: str, what: str, items: Iterable[Volume | Network]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        if found.get(item.name, item) != item:
            raise SpecError(
                field,
                f"two different {what}s are named {item.name!r}",
                value=item.name,
                hint=f"use one {what} object for both, or give them different names",
            )
        found[item.name] = item
    return found


def _volumes(owner: str, declared: object, services: tuple[Service, ...]) -> tuple[Volume, ...]:
    if isinstance(declared, Volume) or not isinstance(declared, Sequence):
        raise SpecError(f"{owner}.volumes", "expected a list of Volume", value=declared)
    for item in declared:
        if not isinstance(item, Volume):
            raise SpecError(f"{owner}.volumes", "expected a Volume", value=item)
    used = (v for s in services for v in s.volume_objects)
    found = _unique_by_name(f"{owner}.volumes", "volume", [*declared, *used])
    return tuple(found[n] for n in sorted(found))


def _networks(owner: str, declared: object, services: tuple[Service, ...]) -> tuple[Network, ...]:
    field = f"{owner}.networks"
    if isinstance(declared, Network | str) or not isinstance(declared, Sequence):
        raise SpecError(field, "expected a list of Network", value=declared)
    given = [n if isinstance(n, Network) else Network(validate.string(field, n)) for n in declared]
    used = [n for s in services for n in s.networks]
    found = _unique_by_name(field, "network", [*given, *used])
    if (
        any(not s.networks and s.network_mode is None for s in services)
        and DEFAULT_NETWORK not in found
    ):
        found[DEFAULT_NETWORK] = Network(DEFAULT_NETWORK)
    return tuple(found[n] for n in sorted(found))


def _check_dependencies(owner: str, services: tuple[Service, ...]) -> None:
    names = {s.name for s in services}
    deps = {s.name: [t for t, _ in s.depends_on] for s in services}
    for service in services:
        for target in deps[service.name]:
            if target not in names:
                raise SpecError(
                    f"Service({service.name!r}).depends_on",
                    f"no service {target!r} in {owner}",
                    hint=f"add {target} to Stack(services=[...]) or remove the dependency",
                )
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in deps[name]:
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise SpecError(
                    f"{owner}.services",
                    "depends_on forms a cycle: " + " -> ".join(cycle),
                    hint="remove one of these dependencies",
                )
            if target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(deps):
        if name not in state:
            visit(name)


def _check_ports(owner: str, services: tuple[Service, ...]) -> None:
    published = [(s.name, p) for s in services for p in s.ports]
    for i, (name, port) in enumerate(published):
        for other, theirs in published[i + 1 :]:
            if other != name and port.conflicts_with(theirs):
                raise SpecError(
                    f"{owner}.services",
                    f"services {name!r} and {other!r} both publish host port "
                    f"{port.host_port}/{port.protocol}",
                    hint="change one of the host ports, or use 0 for any free port",
                )
