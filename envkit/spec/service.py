"""``Service``: one container of a stack, with everything it needs to run."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Never, cast

from envkit.errors import SpecError
from envkit.records import Frozen
from envkit.spec import validate
from envkit.spec.canonical import SpecObject, pairs_to_dict, versioned
from envkit.spec.healthcheck import Healthcheck
from envkit.spec.hosts import parse as parse_hosts
from envkit.spec.image import Image
from envkit.spec.mounts import Mount, parse_mounts
from envkit.spec.network import Network
from envkit.spec.ports import PortMapping, parse_ports
from envkit.spec.readiness import Ready, ready_list
from envkit.spec.secret import Secret, secret_list
from envkit.spec.signals import name as signal_name
from envkit.spec.sysctls import parse as parse_sysctls
from envkit.spec.ulimits import parse as parse_ulimits
from envkit.spec.volume import Volume

Condition = Literal["started", "healthy", "completed"]
CONDITIONS: tuple[Condition, ...] = ("started", "healthy", "completed")

_RESTART_RE = re.compile(r"^(?:no|always|unless-stopped|on-failure(?::[1-9][0-9]*)?)$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class Service(Frozen, SpecObject):
    """A container of a stack. See docs/reference/spec.md for every option.

    Mappings and lists whose order carries no meaning (env, ports, volumes, secrets,
    networks, ...) are stored sorted, so two Services built from the same description in
    another order are equal and have the same cache key.
    """

    name: str
    image: Image
    command: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    env: tuple[tuple[str, str], ...]
    ports: tuple[PortMapping, ...]
    volumes: tuple[Mount, ...]
    secrets: tuple[Secret, ...]
    healthcheck: Healthcheck | None
    depends_on: tuple[tuple[str, Condition], ...]
    restart: str
    networks: tuple[Network, ...]
    user: str | None
    workdir: str | None
    hostname: str | None
    tmpfs: tuple[str, ...]
    read_only: bool
    memory: int | None
    cpus: float | None
    pids_limit: int | None
    aliases: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    ready: tuple[Ready, ...]
    env_file: tuple[str, ...]
    init: bool
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...]
    stop_signal: str | None
    stop_grace_period: float | None
    shm_size: int | None
    seccomp: bool
    ulimits: tuple[tuple[str, int, int], ...]
    extra_hosts: tuple[tuple[str, str], ...]
    sysctls: tuple[tuple[str, str], ...]
    network_mode: str | None

    def __init__(
        self,
        name: str,
        *,
        image: Image | str,
        command: Sequence[str] | str | None = None,
        entrypoint: Sequence[str] | str | None = None,
        env: Mapping[str, str | int | float] | None = None,
        ports: Mapping[int | str, int | str] | Sequence[str | int] | None = None,
        volumes: Mapping[Volume | str, str] | None = None,
        secrets: Sequence[Secret] = (),
        healthcheck: Healthcheck | None = None,
        depends_on: Mapping[Service | str, Condition] | Sequence[Service | str] | None = None,
        restart: str = "no",
        networks: Sequence[Network | str] = (),
        user: str | int | None = None,
        workdir: str | None = None,
        hostname: str | None = None,
        tmpfs: Sequence[str] = (),
        read_only: bool = False,
        memory: str | int | None = None,
        cpus: float | None = None,
        pids_limit: int | None = None,
        aliases: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        ready: Ready | Sequence[Ready] | None = None,
        env_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = (),
        init: bool = False,
        cap_add: Sequence[str] = (),
        cap_drop: Sequence[str] = (),
        stop_signal: str | int | None = None,
        stop_grace_period: float | None = None,
        shm_size: str | int | None = None,
        seccomp: bool = True,
        ulimits: Mapping[str, int | tuple[int, int] | Mapping[str, int]] | None = None,
        extra_hosts: Mapping[str, str] | Sequence[str] = (),
        sysctls: Mapping[str, str | int] | Sequence[str] = (),
        network_mode: Literal["host", "none"] | None = None,
        **unknown: Never,
    ) -> None:
        svc = f"Service({name!r})"
        validate.reject_unknown(svc, unknown, Service.__init__)
        set_ = object.__setattr__
        set_(self, "name", validate.name(f"{svc}.name", name, what="service name"))
        set_(self, "image", _image(f"{svc}.image", image))
        set_(self, "command", _command(f"{svc}.command", command))
        set_(self, "entrypoint", _command(f"{svc}.entrypoint", entrypoint))
        set_(
            self,
            "env",
            validate.str_mapping(f"{svc}.env", env or {}, key_check=validate.env_name),
        )
        set_(self, "ports", parse_ports(f"{svc}.ports", ports or {}))
        set_(self, "volumes", parse_mounts(f"{svc}.volumes", volumes or {}))
        set_(self, "secrets", secret_list(f"{svc}.secrets", secrets))
        if healthcheck is not None and not isinstance(healthcheck, Healthcheck):
            raise SpecError(
                f"{svc}.healthcheck",
                f"expected a Healthcheck, not {type(healthcheck).__name__}",
                value=healthcheck,
            )
        set_(self, "healthcheck", healthcheck)
        set_(self, "depends_on", _depends_on(f"{svc}.depends_on", self.name, depends_on))
        if not isinstance(restart, str) or not _RESTART_RE.match(restart):
            raise SpecError(
                f"{svc}.restart",
                "invalid restart policy",
                value=restart,
                hint='use "no", "on-failure", "on-failure:N", "always" or "unless-stopped"',
            )
        set_(self, "restart", restart)
        set_(self, "networks", _networks(f"{svc}.networks", networks))
        set_(self, "user", None if user is None else validate.user(f"{svc}.user", user))
        set_(
            self,
            "workdir",
            None if workdir is None else validate.absolute_path(f"{svc}.workdir", workdir),
        )
        if hostname is not None and (
            not isinstance(hostname, str) or not _HOSTNAME_RE.match(hostname)
        ):
            raise SpecError(
                f"{svc}.hostname",
                "invalid host name",
                value=hostname,
                hint="use letters, digits and '-', in labels separated by dots",
            )
        set_(self, "hostname", hostname)
        set_(self, "tmpfs", _tmpfs(f"{svc}.tmpfs", tmpfs))
        set_(self, "read_only", validate.boolean(f"{svc}.read_only", read_only))
        set_(
            self,
            "memory",
            None if memory is None else validate.size(f"{svc}.memory", memory, what="memory size"),
        )
        set_(self, "cpus", None if cpus is None else validate.number(f"{svc}.cpus", cpus))
        set_(
            self,
            "pids_limit",
            None if pids_limit is None else validate.count(f"{svc}.pids_limit", pids_limit),
        )
        names = validate.strings(f"{svc}.aliases", aliases)
        for alias in names:
            if not _HOSTNAME_RE.match(alias):
                raise SpecError(f"{svc}.aliases", "invalid network alias", value=alias)
        set_(self, "aliases", tuple(sorted(set(names))))
        set_(self, "labels", validate.str_mapping(f"{svc}.labels", labels or {}))
        set_(self, "ready", ready_list(f"{svc}.ready", ready))
        set_(self, "env_file", _env_files(f"{svc}.env_file", env_file))
        set_(self, "init", validate.boolean(f"{svc}.init", init))
        set_(self, "cap_add", _capabilities(f"{svc}.cap_add", cap_add))
        set_(self, "cap_drop", _capabilities(f"{svc}.cap_drop", cap_drop))
        set_(self, "stop_signal", _stop_signal(f"{svc}.stop_signal", stop_signal))
        set_(
            self,
            "stop_grace_period",
            None
            if stop_grace_period is None
            else validate.number(f"{svc}.stop_grace_period", stop_grace_period, positive=False),
        )
        set_(
            self,
            "shm_size",
            None
            if shm_size is None
            else validate.size(f"{svc}.shm_size", shm_size, what="size of /dev/shm"),
        )
        set_(self, "seccomp", validate.boolean(f"{svc}.seccomp", seccomp))
        set_(self, "ulimits", parse_ulimits(f"{svc}.ulimits", ulimits or {}))
        set_(self, "extra_hosts", parse_hosts(f"{svc}.extra_hosts", extra_hosts))
        set_(self, "sysctls", parse_sysctls(f"{svc}.sysctls", sysctls))
        set_(self, "network_mode", _network_mode(svc, network_mode, self))
        _check_targets(svc, self)

    @property
    def volume_objects(self) -> tuple[Volume, ...]:
        """The named volumes this service mounts."""
        return tuple(m.source for m in self.volumes if isinstance(m.source, Volume))

    def canonical(self) -> dict[str, Any]:
        """Every option, normalised; the image as its canonical form."""
        return versioned(
            "service",
            {
                "name": self.name,
                "image": self.image.canonical(),
                "command": None if self.command is None else list(self.command),
                "entrypoint": None if self.entrypoint is None else list(self.entrypoint),
                "env": pairs_to_dict(self.env),
                "ports": [str(p) for p in self.ports],
                "volumes": [m.canonical() for m in self.volumes],
                "secrets": [s.canonical() for s in self.secrets],
                "healthcheck": None if self.healthcheck is None else self.healthcheck.canonical(),
                "depends_on": dict(self.depends_on),
                "restart": self.restart,
                "networks": [n.name for n in self.networks],
                "user": self.user,
                "workdir": self.workdir,
                "hostname": self.hostname,
                "tmpfs": list(self.tmpfs),
                "read_only": self.read_only,
                "memory": self.memory,
                "cpus": self.cpus,
                "pids_limit": self.pids_limit,
                "aliases": list(self.aliases),
                "labels": pairs_to_dict(self.labels),
                # Only when set, so the canonical form of a service without them (and
                # the recorded state of running stacks) stays what it was.
                **({"ready": [r.canonical() for r in self.ready]} if self.ready else {}),
                **({"env_file": list(self.env_file)} if self.env_file else {}),
                **({"init": True} if self.init else {}),
                **({"cap_add": list(self.cap_add)} if self.cap_add else {}),
                **({"cap_drop": list(self.cap_drop)} if self.cap_drop else {}),
                **({"stop_signal": self.stop_signal} if self.stop_signal else {}),
                **(
                    {"stop_grace_period": self.stop_grace_period}
                    if self.stop_grace_period is not None
                    else {}
                ),
                **({"shm_size": self.shm_size} if self.shm_size is not None else {}),
                **({"seccomp": False} if not self.seccomp else {}),
                **({"ulimits": [list(u) for u in self.ulimits]} if self.ulimits else {}),
                **(
                    {"extra_hosts": [list(h) for h in self.extra_hosts]} if self.extra_hosts else {}
                ),
                **({"sysctls": dict(self.sysctls)} if self.sysctls else {}),
                **({"network_mode": self.network_mode} if self.network_mode else {}),
            },
        )


_CAPABILITY_RE = re.compile(r"^(?:CAP_)?[A-Z][A-Z_]*$")


def _capabilities(field: str, value: Sequence[str]) -> tuple[str, ...]:
    """Capability names as compose's ``cap_add``/``cap_drop`` take them, upper-cased
    with ``CAP_`` and sorted; ``ALL`` stays ``ALL``. The runtime checks that each exists."""
    found = set()
    for name in validate.strings(field, value):
        upper = name.strip().upper()
        if not _CAPABILITY_RE.match(upper):
            raise SpecError(
                field, "not a capability name", value=name, hint="e.g. NET_ADMIN or CAP_SYS_PTRACE"
            )
        found.add(upper if upper == "ALL" or upper.startswith("CAP_") else f"CAP_{upper}")
    return tuple(sorted(found))


def _stop_signal(field: str, value: object) -> str | None:
    """A signal name (``"SIGQUIT"``, ``"quit"``) or number (``3``), stored by its
    canonical name (:mod:`envkit.spec.signals`); ``None``: the image's, else SIGTERM."""
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise SpecError(field, "expected a signal name or number", value=value)
    try:
        return signal_name(value)
    except ValueError as exc:
        raise SpecError(
            field, str(exc), value=value, hint='e.g. "SIGQUIT", "QUIT" or 3 (Linux signals)'
        ) from None


def _image(field: str, value: object) -> Image:
    if isinstance(value, Image):
        return value
    if isinstance(value, str):
        return Image.from_(value)
    raise SpecError(
        field,
        f"expected an Image or an image reference, not {type(value).__name__}",
        value=value,
        hint='e.g. image=Image.from_("busybox") or image="busybox"',
    )


def _command(field: str, value: object) -> tuple[str, ...] | None:
    """A list as is; a string split like a shell would (compose's rule), no shell run."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            words = shlex.split(validate.string(field, value))
        except ValueError as exc:
            raise SpecError(field, f"cannot split into words: {exc}", value=value) from None
        return validate.argv(field, words)
    return validate.argv(field, value, allow_empty=True)


def _depends_on(field: str, own: str, value: object) -> tuple[tuple[str, Condition], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = [(v, "started") for v in value]
    else:
        raise SpecError(
            field,
            "expected a mapping {service: condition} or a list of services",
            value=value,
            hint='e.g. depends_on={db: "healthy"}',
        )
    out: dict[str, Condition] = {}
    for target, condition in items:
        target_name = target.name if isinstance(target, Service) else target
        target_name = validate.name(field, target_name, what="service name")
        if target_name == own:
            raise SpecError(field, "a service cannot depend on itself", value=own)
        checked = validate.choice(f"{field}[{target_name!r}]", condition, CONDITIONS)
        out[target_name] = cast(Condition, checked)
    return tuple(sorted(out.items()))


def _networks(field: str, value: object) -> tuple[Network, ...]:
    if isinstance(value, Network | str | bytes) or not isinstance(value, Sequence):
        raise SpecError(field, "expected a list of Network", value=value, hint="networks=[net]")
    by_name: dict[str, Network] = {}
    for item in value:
        net = item if isinstance(item, Network) else Network(validate.string(field, item))
        if by_name.get(net.name, net) != net:
            raise SpecError(field, f"two different networks are named {net.name!r}")
        by_name[net.name] = net
    return tuple(by_name[n] for n in sorted(by_name))


def _tmpfs(field: str, value: object) -> tuple[str, ...]:
    entries = validate.strings(field, value)
    for entry in entries:
        validate.mount_target(field, entry.split(":", 1)[0])
    return tuple(sorted(set(entries)))


def _network_mode(svc: str, mode: object, service: Service) -> str | None:
    """compose's ``network_mode``: ``"host"`` (the host's network namespace) or
    ``"none"`` (loopback only); either takes the place of networks, ports and aliases."""
    if mode is None:
        return None
    validate.choice(f"{svc}.network_mode", mode, ("host", "none"))
    if service.networks or service.ports or service.aliases or service.extra_hosts:
        raise SpecError(
            f"{svc}.network_mode",
            f"network_mode {mode!r} cannot be combined with networks, ports, aliases or "
            "extra_hosts",
            hint="drop them: on the host's network a port is the host's",
        )
    return str(mode)


def _env_files(field: str, value: object) -> tuple[str, ...]:
    """One path or a list of paths, kept in order (a later file wins)."""
    items = [value] if isinstance(value, str) or hasattr(value, "__fspath__") else value
    if not isinstance(items, Sequence):
        raise SpecError(field, "expected a path or a list of paths", value=value)
    return tuple(validate.path(field, item) for item in items)


def _check_targets(owner: str, service: Service) -> None:
    """Two mounts at one container path (volume, bind, tmpfs, secret file) would hide
    one another: refuse them before anything starts."""
    seen: dict[str, str] = {}
    entries = [
        *((m.target, f"volume {m.canonical()['source']!r}") for m in service.volumes),
        *((t.split(":", 1)[0], "tmpfs") for t in service.tmpfs),
        *((f"/run/secrets/{s.name}", f"secret {s.name!r}") for s in service.secrets),
    ]
    for target, what in entries:
        path = os.path.normpath(target)
        if path in seen:
            raise SpecError(
                f"{owner}.volumes",
                f"{seen[path]} and {what} are both mounted at {path}",
                value=path,
                hint="mount each volume, tmpfs or secret at a path of its own",
            )
        seen[path] = what
