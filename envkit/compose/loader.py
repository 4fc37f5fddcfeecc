"""Load a compose file into envkit's spec objects, as ``docker compose`` reads it.

:func:`load` reads the file (YAML 1.2, with line numbers), the ``.env`` beside it,
interpolates variables, keeps the services of the active profiles and maps each part
onto :class:`~envkit.spec.Service`, :class:`~envkit.spec.Volume`,
:class:`~envkit.spec.Network` and :class:`~envkit.spec.Secret`. The result is a
:class:`ComposeProject`: the :class:`~envkit.spec.Stack` and what compose's normalised
form needs besides (how each image is built, the names as written). See
docs/reference/compose.md for what is supported.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from envkit.compose import dotenv, durations, keys, syntax
from envkit.compose.errors import Reporter
from envkit.compose.interpolate import InterpolationError, substitute
from envkit.compose.yaml_lines import Map, Seq
from envkit.compose.yaml_lines import load as load_yaml
from envkit.errors import EnvkitError, SpecError, StackFileError
from envkit.spec.healthcheck import Healthcheck
from envkit.spec.image import Image
from envkit.spec.network import DEFAULT_NETWORK, Network
from envkit.spec.secret import Secret
from envkit.spec.service import Service
from envkit.spec.stack import Stack
from envkit.spec.volume import Volume

#: The files compose looks for when none is given, in its order of preference.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")

_T = TypeVar("_T")
#: Labels on every service of a compose file (compose puts them on its containers).
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_CONDITIONS = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed",
}
_NAME_CHARS = re.compile(r"[^a-z0-9_-]+")
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class BuildSpec:
    """A service's ``build:`` as compose normalises it (absolute context)."""

    context: str
    dockerfile: str = "Dockerfile"
    args: tuple[tuple[str, str | None], ...] = ()
    target: str | None = None


@dataclass(frozen=True)
class ComposeProject:
    """A loaded compose file: the Stack and what the normalised form shows besides it."""

    path: Path
    stack: Stack
    #: image references as written (``postgres:15``), by service
    images: Mapping[str, str] = field(default_factory=dict)
    #: how a service's image is built, by service
    builds: Mapping[str, BuildSpec] = field(default_factory=dict)
    #: the compose name of each secret (envkit names a secret by its file name)
    secret_keys: Mapping[str, str] = field(default_factory=dict)
    #: each service's networks with their aliases, as written
    service_networks: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    #: one line per ignored key or unset variable, ``file:line: key: why``
    warnings: tuple[str, ...] = ()


def find_compose_file(directory: Path | None = None) -> Path | None:
    """The compose file compose would use in ``directory`` (default: the current one)
    or the nearest parent that has one; ``None`` when there is none."""
    start = (directory or Path.cwd()).absolute()
    for folder in (start, *start.parents):
        for name in COMPOSE_FILES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def is_compose_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a compose file (``.yaml``/``.yml``) rather than a stack.py."""
    return Path(path).suffix in (".yaml", ".yml")


def load(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    profiles: Sequence[str] | None = None,
    project_name: str | None = None,
) -> ComposeProject:
    """Load the compose file at ``path``.

    ``environ`` replaces the process environment for interpolation (``.env`` beside
    the file fills in what it does not set); ``profiles`` replaces ``COMPOSE_PROFILES``;
    ``project_name`` replaces ``COMPOSE_PROJECT_NAME`` and the file's ``name:``.
    Raises :class:`~envkit.errors.StackFileError` naming ``file:line`` and the key.
    """
    file = Path(path)
    shown = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StackFileError(
            f"{shown}: no such compose file", hint="give the path of your compose.yaml"
        ) from None
    except IsADirectoryError:
        raise StackFileError(
            f"{shown}: is a directory",
            hint=f"give the file inside it, e.g. {file / COMPOSE_FILES[0]}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StackFileError(f"{shown}: cannot read: {exc}") from None
    base = file.absolute().parent
    rep = Reporter(shown)
    env = _environment(base, os.environ if environ is None else environ)
    doc = load_yaml(text, shown)
    if doc is None:
        raise rep.error(1, "", "empty compose file", "add a services: section")
    if not isinstance(doc, Map):
        raise rep.error(1, "", "expected a mapping at the top level", "start with services:")
    if "name" in doc:
        doc["name"] = _one(doc["name"], rep, env, "name", doc.line_of("name"))
    home = (os.environ if environ is None else environ).get("HOME")
    project = _Project(rep, doc, base, env, profiles, project_name, home)
    name = project.name()
    # The project name is a variable of its own for the rest of the file (compose-spec).
    project.env = env = {**env, "COMPOSE_PROJECT_NAME": name}
    project.project = name
    _interpolate(doc, rep, env, "")
    return project.build(file, name)


def _environment(base: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables interpolation sees: ``.env`` beside the file, then the environment."""
    found: dict[str, str] = {}
    dot = base / ".env"
    if dot.is_file():
        try:
            text = dot.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StackFileError(f"{dot}: cannot read: {exc}") from None
        found.update(dotenv.parse(text, str(dot), environ))
    found.update(environ)
    return found


def _interpolate(node: Any, rep: Reporter, env: Mapping[str, str], where: str) -> None:
    """Replace variables in every string value of ``node`` in place (never in keys)."""
    if isinstance(node, Map):
        for key in list(node):
            if not where and key == "name":
                continue  # interpolated first, before the project name is known
            node[key] = _one(node[key], rep, env, f"{where}.{key}".lstrip("."), node.line_of(key))
    elif isinstance(node, Seq):
        for i in range(len(node)):
            node[i] = _one(node[i], rep, env, f"{where}[{i}]", node.line_of(i))


def _one(value: Any, rep: Reporter, env: Mapping[str, str], where: str, line: int) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value

        def warn(name: str) -> None:
            message = f'the "{name}" variable is not set, defaulting to a blank string'
            if not any(w.endswith(message) for w in rep.warnings):
                rep.warn(line, where, message)

        try:
            return substitute(value, env, warn)
        except InterpolationError as exc:
            raise rep.error(
                line, where, exc.message, "set the variable, or fix the ${...}"
            ) from None
    if isinstance(value, Map | Seq):
        _interpolate(value, rep, env, where)
    return value


class _Project:
    def __init__(
        self,
        rep: Reporter,
        doc: Map,
        base: Path,
        env: Mapping[str, str],
        profiles: Sequence[str] | None,
        project_name: str | None,
        home: str | None,
    ) -> None:
        self.home = home
        self.project = ""
        self.rep = rep
        self.doc = doc
        self.base = base
        self.env = env
        self.profiles = profiles
        self.project_name = project_name
        self.volumes: dict[str, Volume] = {}
        self.networks: dict[str, Network] = {}
        self.secrets: dict[str, Secret] = {}
        self.secret_keys: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.builds: dict[str, BuildSpec] = {}
        self.service_networks: dict[str, dict[str, tuple[str, ...]]] = {}

    def build(self, file: Path, name: str) -> ComposeProject:
        doc, rep = self.doc, self.rep
        for key in doc:
            if key.startswith("x-") or key in keys.TOP:
                continue
            line = doc.line_of(key)
            if key in keys.TOP_REFUSED:
                raise rep.error(line, key, "not supported by envkit", keys.TOP_REFUSED[key])
            raise rep.error(
                line,
                key,
                "unknown top-level key",
                "compose files have services:, volumes:, networks:, secrets:",
            )
        if "version" in doc:
            rep.warn(
                doc.line_of("version"),
                "version",
                "the attribute is obsolete; ignored (as compose does)",
            )
        services = self.mapping(doc, "services")
        if not services:
            raise rep.error(doc.line, "services", "no services", "add a service under services:")
        self.top_volumes(name)
        self.top_networks(name)
        self.top_secrets(name)
        active = self.active(services)
        built: list[Service] = []
        for svc_name in active:
            built.append(
                self.service(svc_name, services[svc_name], services.line_of(svc_name), active)
            )
        used_networks = [n for n in self.networks.values() if n.name != DEFAULT_NETWORK]
        declared_default = [n for n in self.networks.values() if n.name == DEFAULT_NETWORK]
        try:
            stack = Stack(name, built, networks=[*used_networks, *declared_default])
        except SpecError as exc:
            raise rep.error(0, "", exc.message, exc.hint) from None
        # A declared default network counts only when some service joins it.
        return ComposeProject(
            path=file.absolute(),
            stack=stack.with_base_dir(self.base),
            images=self.images,
            builds=self.builds,
            secret_keys=self.secret_keys,
            service_networks=self.service_networks,
            warnings=tuple(rep.warnings),
        )

    # -- helpers -------------------------------------------------------------------------

    def mapping(self, parent: Map, key: str) -> Map:
        value = parent.get(key)
        if value is None:
            return Map()
        if not isinstance(value, Map):
            raise self.rep.error(parent.line_of(key), key, "expected a mapping")
        return value

    def spec(self, line: int, where: str, make: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        """``make(*args, **kw)``, its SpecError turned into one naming the line."""
        try:
            return make(*args, **kw)
        except SpecError as exc:
            raise self.rep.error(line, where, exc.message, exc.hint) from None

    def name(self) -> str:
        doc, rep = self.doc, self.rep
        if self.project_name:
            chosen, line = self.project_name, 0
        elif self.env.get("COMPOSE_PROJECT_NAME"):
            chosen, line = self.env["COMPOSE_PROJECT_NAME"], 0
        elif doc.get("name"):
            chosen, line = str(doc["name"]), doc.line_of("name")
        else:
            normalised = _NAME_CHARS.sub("", self.base.name.lower()).lstrip("_-")
            if not normalised:
                raise rep.error(
                    0,
                    "name",
                    f"no project name can be made of the directory name {self.base.name!r}",
                    "set name: at the top of the compose file",
                )
            return normalised
        if not _PROJECT_RE.match(chosen):
            raise rep.error(
                line,
                "name",
                f"invalid project name {chosen!r}",
                "use lowercase letters, digits, '-' and '_', starting with a letter or digit",
            )
        return chosen

    def active(self, services: Map) -> list[str]:
        """The services of the active profiles (those without profiles always)."""
        wanted = self.profiles
        if wanted is None:
            text = self.env.get("COMPOSE_PROFILES", "")
            wanted = [p.strip() for p in text.split(",") if p.strip()]
        out = []
        for svc_name, body in services.items():
            if not isinstance(body, Map):
                raise self.rep.error(
                    services.line_of(svc_name), f"services.{svc_name}", "expected a mapping"
                )
            given = body.get("profiles") or []
            if not isinstance(given, list) or not all(isinstance(p, str) for p in given):
                raise self.rep.error(
                    body.line_of("profiles"),
                    f"services.{svc_name}.profiles",
                    "expected a list of names",
                )
            if not given or "*" in wanted or set(given) & set(wanted):
                out.append(svc_name)
        if not out:
            raise self.rep.error(
                services.line,
                "services",
                "no service is in an active profile",
                "activate one with COMPOSE_PROFILES=NAME (or --profile NAME)",
            )
        return out

    # -- top-level resources ---------------------------------------------------------------

    def top_volumes(self, project: str) -> None:
        section = self.mapping(self.doc, "volumes")
        for vol_name, body in section.items():
            where, line = f"volumes.{vol_name}", section.line_of(vol_name)
            body = body if isinstance(body, Map) else Map()
            driver, options = "local", {}
            for key, value in body.items():
                kline = body.line_of(key)
                if key == "driver":
                    driver = str(value)
                    if driver != "local":
                        raise self.rep.error(
                            kline,
                            f"{where}.driver",
                            f"volume driver {driver!r} is not supported",
                            "use the local driver (or an envkit volume backend in a stack.py)",
                        )
                elif key == "driver_opts":
                    options = {str(k): str(v) for k, v in (value or {}).items()}
                elif key == "name":
                    if value != f"{project}_{vol_name}":
                        raise self.rep.error(
                            kline,
                            f"{where}.name",
                            "a volume name of your own is not supported",
                            f"envkit names it {project}_{vol_name}; remove name:",
                        )
                elif key == "external":
                    if value:
                        raise self.rep.error(
                            kline,
                            f"{where}.external",
                            "external volumes are not supported",
                            "let envkit create the volume: remove external:",
                        )
                elif key == "labels":
                    self.rep.warn(kline, f"{where}.labels", "volume labels are not kept; ignored")
                elif not key.startswith("x-"):
                    raise self.rep.error(
                        kline, f"{where}.{key}", "unknown or unsupported volume key"
                    )
            self.volumes[vol_name] = self.spec(line, where, Volume, vol_name, options=options)

    def top_networks(self, project: str) -> None:
        section = self.mapping(self.doc, "networks")
        for net_name, body in section.items():
            where, line = f"networks.{net_name}", section.line_of(net_name)
            body = body if isinstance(body, Map) else Map()
            internal, subnet = False, None
            for key, value in body.items():
                kline = body.line_of(key)
                if key == "driver":
                    if value != "bridge":
                        raise self.rep.error(
                            kline,
                            f"{where}.driver",
                            f"network driver {value!r} is not supported",
                            "use bridge (the default)",
                        )
                elif key == "internal":
                    internal = value is True
                elif key == "ipam":
                    subnet = self.subnet(where, value, kline)
                elif key == "name":
                    if value != f"{project}_{net_name}":
                        raise self.rep.error(
                            kline,
                            f"{where}.name",
                            "a network name of your own is not supported",
                            "remove name:",
                        )
                elif key == "external":
                    if value:
                        raise self.rep.error(
                            kline,
                            f"{where}.external",
                            "external networks are not supported",
                            "remove external:",
                        )
                elif key in ("labels", "attachable", "driver_opts"):
                    self.rep.warn(kline, f"{where}.{key}", "not used by envkit; ignored")
                elif not key.startswith("x-"):
                    raise self.rep.error(
                        kline, f"{where}.{key}", "unknown or unsupported network key"
                    )
            self.networks[net_name] = self.spec(
                line, where, Network, net_name, internal=internal, subnet=subnet
            )

    def subnet(self, where: str, ipam: Any, line: int) -> str | None:
        if not isinstance(ipam, Map):
            raise self.rep.error(line, f"{where}.ipam", "expected a mapping")
        for key in ipam:
            if key not in ("driver", "config") and not key.startswith("x-"):
                raise self.rep.error(ipam.line_of(key), f"{where}.ipam.{key}", "not supported")
        if ipam.get("driver", "default") != "default":
            raise self.rep.error(
                ipam.line_of("driver"),
                f"{where}.ipam.driver",
                "only the default IPAM driver is supported",
            )
        config = ipam.get("config") or []
        subnets = [c.get("subnet") for c in config if isinstance(c, Map)]
        for entry in config:
            extra = set(entry) - {"subnet"} if isinstance(entry, Map) else set()
            if extra:
                raise self.rep.error(
                    entry.line,
                    f"{where}.ipam.config",
                    f"{sorted(extra)[0]} is not supported",
                    "give the subnet only",
                )
        if len(subnets) > 1:
            raise self.rep.error(
                line, f"{where}.ipam.config", "one subnet per network is supported"
            )
        return str(subnets[0]) if subnets and subnets[0] else None

    def top_secrets(self, project: str) -> None:
        section = self.mapping(self.doc, "secrets")
        for key_name, body in section.items():
            where, line = f"secrets.{key_name}", section.line_of(key_name)
            if not isinstance(body, Map):
                raise self.rep.error(line, where, "expected a mapping with file: or environment:")
            for key in body:
                if key == "external" and body[key]:
                    raise self.rep.error(
                        body.line_of(key),
                        f"{where}.external",
                        "external secrets are not supported",
                        "use file: or environment:",
                    )
                if key == "name" and body[key] != f"{project}_{key_name}":
                    self.rep.warn(
                        body.line_of(key),
                        f"{where}.name",
                        "ignored: the secret is mounted at /run/secrets/<its key>",
                    )
                elif key not in ("file", "environment", "external", "name") and not key.startswith(
                    "x-"
                ):
                    raise self.rep.error(
                        body.line_of(key),
                        f"{where}.{key}",
                        "not supported",
                        "use file: or environment:",
                    )
            if "file" in body:
                source = "file:" + syntax.host_path(str(body["file"]), self.base, self.home)
            elif "environment" in body:
                source = f"env:{body['environment']}"
            else:
                raise self.rep.error(line, where, "a secret needs file: or environment:")
            self.secrets[key_name] = self.spec(line, where, Secret, key_name, source)

    # -- one service ---------------------------------------------------------------------

    def service(self, name: str, body: Map, line: int, active: list[str]) -> Service:
        rep, where = self.rep, f"services.{name}"
        for key in body:
            if key.startswith("x-") or key in keys.SERVICE:
                continue
            kline = body.line_of(key)
            if key in keys.SERVICE_IGNORED:
                rep.warn(kline, f"{where}.{key}", f"ignored: {keys.SERVICE_IGNORED[key]}")
                continue
            raise rep.error(
                kline,
                f"{where}.{key}",
                "not supported by envkit",
                "remove it, or see docs/reference/compose.md",
            )
        options: dict[str, Any] = {}
        options["image"] = self.image(name, body, where)
        for key in ("command", "entrypoint"):
            if body.get(key) is not None:
                options[key] = self.command(body[key], f"{where}.{key}", body.line_of(key))
        options["env"] = self.environment(body, where)
        if body.get("ports") is not None:
            options["ports"] = syntax.ports(
                rep, f"{where}.ports", body["ports"], body.line_of("ports")
            )
        self.mounts(body, where, options)
        options["secrets"] = self.service_secrets(body, where)
        if body.get("healthcheck") is not None:
            options["healthcheck"] = self.healthcheck(
                body["healthcheck"], f"{where}.healthcheck", body.line_of("healthcheck")
            )
        options["depends_on"] = self.depends_on(name, body, where, active)
        if body.get("restart") is not None:
            options["restart"] = str(body["restart"])
        self.service_network_options(name, body, where, options)
        for key, target in (("user", "user"), ("working_dir", "workdir"), ("hostname", "hostname")):
            if body.get(key) is not None:
                options[target] = str(body[key])
        for key in ("init", "read_only"):
            if body.get(key) is not None:
                options[key] = body[key]
        if body.get("tmpfs") is not None:
            value = body["tmpfs"]
            options.setdefault("tmpfs", []).extend(
                [value] if isinstance(value, str) else list(value)
            )
        for key in ("cap_add", "cap_drop"):
            if body.get(key) is not None:
                options[key] = list(body[key])
        if body.get("labels") is not None:
            options["labels"] = self.pairs(
                body["labels"], f"{where}.labels", body.line_of("labels")
            )
        self.limits(body, where, options)
        # as compose labels its containers; envkit.stack.environment reads the project one
        options["labels"] = {
            **options.get("labels", {}),
            PROJECT_LABEL: self.project,
            SERVICE_LABEL: name,
        }
        return self.spec(line, where, Service, name, **options)

    def image(self, name: str, body: Map, where: str) -> Image:
        rep = self.rep
        build = body.get("build")
        ref = body.get("image")
        if build is None:
            if not isinstance(ref, str) or not ref:
                raise rep.error(
                    body.line, where, "has neither image nor build", "add image: NAME or build: DIR"
                )
            self.images[name] = ref
            return self.spec(body.line_of("image"), f"{where}.image", Image.from_, ref)
        if isinstance(ref, str):
            self.images[name] = ref
        spec = self.build_spec(build, f"{where}.build", body.line_of("build"))
        self.builds[name] = spec
        dockerfile = os.path.join(spec.context, spec.dockerfile)
        if not spec.args and spec.target is None:
            return self.spec(
                body.line_of("build"),
                f"{where}.build",
                Image.from_dockerfile,
                dockerfile,
                spec.context,
            )
        if Path(spec.context) != self.base:
            raise rep.error(
                body.line_of("build"),
                f"{where}.build",
                "args and target need the build context to be the compose file's directory",
                "move the compose file beside the build context, or drop args/target",
            )
        from envkit.build.dockerfile import parse_dockerfile

        args = {k: v for k, v in spec.args if v is not None}
        try:
            return parse_dockerfile(dockerfile, spec.context, args, target=spec.target)
        except EnvkitError as exc:
            raise rep.error(
                body.line_of("build"), f"{where}.build", exc.message, exc.hint
            ) from None

    def build_spec(self, value: Any, where: str, line: int) -> BuildSpec:
        rep = self.rep
        if isinstance(value, str):
            value_map = Map()
            value_map["context"] = value
            value_map.line = line
            value = value_map
        if not isinstance(value, Map):
            raise rep.error(line, where, "expected a directory or a mapping with context:")
        for key in value:
            if key in keys.BUILD or key.startswith("x-"):
                continue
            if key in keys.BUILD_IGNORED:
                rep.warn(
                    value.line_of(key), f"{where}.{key}", f"ignored: {keys.BUILD_IGNORED[key]}"
                )
                continue
            raise rep.error(
                value.line_of(key), f"{where}.{key}", "not supported by envkit", "remove it"
            )
        context = str(value.get("context") or ".")
        if re.match(r"^[a-z][a-z0-9+.-]*://|^git@", context):
            raise rep.error(
                value.line_of("context"),
                f"{where}.context",
                "a remote build context is not supported",
                "clone it and give its directory",
            )
        args: list[tuple[str, str | None]] = []
        if value.get("args") is not None:
            raw = value["args"]
            if isinstance(raw, Seq):
                for item in raw:
                    key, sep, val = str(item).partition("=")
                    args.append((key, val if sep else self.env.get(key)))
            elif isinstance(raw, Map):
                for key, val in raw.items():
                    args.append((key, None if val is None else _scalar_text(val)))
            else:
                raise rep.error(
                    value.line_of("args"), f"{where}.args", "expected a mapping or a list"
                )
        target = value.get("target")
        return BuildSpec(
            context=syntax.host_path(context, self.base, self.home),
            dockerfile=str(value.get("dockerfile") or "Dockerfile"),
            args=tuple(sorted(args)),
            target=None if target is None else str(target),
        )

    def command(self, value: Any, where: str, line: int) -> list[str]:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise self.rep.error(line, where, f"cannot split into words: {exc}") from None
        if isinstance(value, list):
            return [_scalar_text(v) for v in value]
        raise self.rep.error(line, where, "expected a string or a list")

    def pairs(self, value: Any, where: str, line: int, *, resolve: bool = False) -> dict[str, str]:
        """A mapping or a ``KEY=VALUE`` list; ``KEY`` alone (or ``KEY:`` null) takes the
        value from the environment when ``resolve``, else is left out."""
        out: dict[str, str] = {}
        items: list[tuple[str, str | None]] = []
        if isinstance(value, Map):
            items = [(str(k), None if v is None else _scalar_text(v)) for k, v in value.items()]
        elif isinstance(value, list):
            for item in value:
                key, sep, text = str(item).partition("=")
                items.append((key, text if sep else None))
        else:
            raise self.rep.error(line, where, "expected a mapping or a list of KEY=VALUE")
        for key, given in items:
            val = self.env.get(key) if given is None and resolve else given
            if val is not None:
                out[key] = val
        return out

    def environment(self, body: Map, where: str) -> dict[str, str]:
        env: dict[str, str] = {}
        if body.get("env_file") is not None:
            for path, required in self.env_files(
                body["env_file"], f"{where}.env_file", body.line_of("env_file")
            ):
                try:
                    text = Path(path).read_text(encoding="utf-8")
                except FileNotFoundError:
                    if required:
                        raise self.rep.error(
                            body.line_of("env_file"),
                            f"{where}.env_file",
                            f"env file {path} not found",
                            "create it, or mark it required: false",
                        ) from None
                    continue
                except OSError as exc:
                    raise self.rep.error(
                        body.line_of("env_file"),
                        f"{where}.env_file",
                        f"cannot read {path}: {exc.strerror}",
                    ) from None
                env.update(dotenv.parse(text, path, self.env))
        if body.get("environment") is not None:
            env.update(
                self.pairs(
                    body["environment"],
                    f"{where}.environment",
                    body.line_of("environment"),
                    resolve=True,
                )
            )
        return env

    def env_files(self, value: Any, where: str, line: int) -> list[tuple[str, bool]]:
        items = [value] if isinstance(value, str | Map) else value
        if not isinstance(items, list):
            raise self.rep.error(line, where, "expected a path or a list of paths")
        out = []
        for item in items:
            if isinstance(item, Map):
                if item.get("format") not in (None, "raw") and item.get("format"):
                    raise self.rep.error(
                        item.line, where, f"env_file format {item['format']!r} is not supported"
                    )
                out.append(
                    (
                        syntax.host_path(str(item.get("path")), self.base, self.home),
                        item.get("required", True) is not False,
                    )
                )
            else:
                out.append((syntax.host_path(str(item), self.base, self.home), True))
        return out

    def mounts(self, body: Map, where: str, options: dict[str, Any]) -> None:
        if body.get("volumes") is None:
            return
        volumes: dict[Volume | str, str] = {}
        for mount in syntax.volumes(
            self.rep,
            f"{where}.volumes",
            body["volumes"],
            body.line_of("volumes"),
            self.base,
            self.home,
        ):
            suffix = ":ro" if mount.read_only else ""
            if mount.kind == "tmpfs":
                entry = mount.target + (f":{mount.tmpfs_options}" if mount.tmpfs_options else "")
                options.setdefault("tmpfs", []).append(entry)
            elif mount.kind == "bind":
                volumes[mount.source] = mount.target + suffix
            else:
                volume = self.volumes.get(mount.source)
                if volume is None:
                    raise self.rep.error(
                        body.line_of("volumes"),
                        f"{where}.volumes",
                        f"refers to undefined volume {mount.source}",
                        f"declare it under the top-level volumes: ({mount.source}: {{}})",
                    )
                if volume in volumes:
                    raise self.rep.error(
                        body.line_of("volumes"),
                        f"{where}.volumes",
                        f"volume {mount.source} is mounted twice",
                        "envkit mounts a volume once per service",
                    )
                volumes[volume] = mount.target + suffix
        options["volumes"] = volumes

    def service_secrets(self, body: Map, where: str) -> list[Secret]:
        value = body.get("secrets")
        if value is None:
            return []
        line = body.line_of("secrets")
        if not isinstance(value, list):
            raise self.rep.error(line, f"{where}.secrets", "expected a list")
        out = []
        for i, item in enumerate(value):
            iwhere, iline = (
                f"{where}.secrets[{i}]",
                value.line_of(i) if isinstance(value, Seq) else line,
            )
            if isinstance(item, Map):
                source = str(item.get("source") or "")
                target = str(item.get("target") or source)
                for key in ("uid", "gid", "mode"):
                    if key in item:
                        self.rep.warn(
                            item.line_of(key),
                            f"{iwhere}.{key}",
                            "ignored: secrets are mounted read-only for the container's user",
                        )
                for key in item:
                    if key not in ("source", "target", "uid", "gid", "mode") and not key.startswith(
                        "x-"
                    ):
                        raise self.rep.error(item.line_of(key), f"{iwhere}.{key}", "not supported")
            else:
                source = target = str(item)
            declared = self.secrets.get(source)
            if declared is None:
                raise self.rep.error(
                    iline,
                    iwhere,
                    f"refers to undefined secret {source}",
                    "declare it under the top-level secrets:",
                )
            if target.startswith("/"):
                if not target.startswith("/run/secrets/") or "/" in target[len("/run/secrets/") :]:
                    raise self.rep.error(
                        iline,
                        f"{iwhere}.target",
                        f"a secret can only be mounted in /run/secrets, not {target}",
                        "give a file name as target",
                    )
                target = target[len("/run/secrets/") :]
            secret = (
                declared
                if target == source
                else self.spec(iline, iwhere, Secret, target, declared.source)
            )
            self.secret_keys[secret.name] = source
            out.append(secret)
        return out

    def healthcheck(self, value: Any, where: str, line: int) -> Healthcheck:
        rep = self.rep
        if not isinstance(value, Map):
            raise rep.error(line, where, "expected a mapping")
        known = {
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        }
        for key in value:
            if key not in known and not key.startswith("x-"):
                raise rep.error(value.line_of(key), f"{where}.{key}", "unknown healthcheck key")
        if value.get("disable") is True:
            return Healthcheck(["NONE"])
        test = value.get("test")
        if test is None:
            raise rep.error(
                line,
                f"{where}.test",
                "envkit needs the test of a healthcheck",
                "copy the image's HEALTHCHECK command here",
            )
        times: dict[str, float] = {}
        for key in ("interval", "timeout", "start_period"):
            if value.get(key) is not None:
                seconds = durations.parse(str(value[key]))
                if seconds is None or seconds < 0:
                    raise rep.error(
                        value.line_of(key),
                        f"{where}.{key}",
                        f"invalid duration {value[key]!r}",
                        'e.g. "30s", "1m30s", "500ms"',
                    )
                times[key] = seconds
        if "start_interval" in value:
            rep.warn(
                value.line_of("start_interval"),
                f"{where}.start_interval",
                "ignored: envkit checks every interval from the start",
            )
        if isinstance(test, str):
            form: list[str] | str = test
        elif isinstance(test, list):
            form = [_scalar_text(t) for t in test]
        else:
            raise rep.error(value.line_of("test"), f"{where}.test", "expected a string or a list")
        kwargs: dict[str, Any] = {k: v for k, v in times.items() if v > 0 or k == "start_period"}
        if value.get("retries") is not None:
            kwargs["retries"] = value["retries"]
        return self.spec(value.line_of("test"), where, Healthcheck, form, **kwargs)

    def depends_on(self, name: str, body: Map, where: str, active: list[str]) -> dict[str, str]:
        value = body.get("depends_on")
        if value is None:
            return {}
        line = body.line_of("depends_on")
        services = self.mapping(self.doc, "services")
        out: dict[str, str] = {}
        entries: list[tuple[str, str, bool, int]] = []
        if isinstance(value, Seq):
            entries = [(str(t), "started", True, value.line_of(i)) for i, t in enumerate(value)]
        elif isinstance(value, Map):
            for target, spec in value.items():
                spec = spec if isinstance(spec, Map) else Map()
                condition = str(spec.get("condition", "service_started"))
                if condition not in _CONDITIONS:
                    raise self.rep.error(
                        spec.line_of("condition"),
                        f"{where}.depends_on.{target}.condition",
                        f"unknown condition {condition!r}",
                        "use " + ", ".join(_CONDITIONS),
                    )
                if spec.get("restart") is True:
                    self.rep.warn(
                        spec.line_of("restart"),
                        f"{where}.depends_on.{target}.restart",
                        "ignored: envkit does not restart dependents",
                    )
                for key in spec:
                    if key not in ("condition", "required", "restart"):
                        raise self.rep.error(
                            spec.line_of(key), f"{where}.depends_on.{target}.{key}", "unknown key"
                        )
                entries.append(
                    (
                        str(target),
                        _CONDITIONS[condition],
                        spec.get("required", True) is not False,
                        value.line_of(target),
                    )
                )
        else:
            raise self.rep.error(line, f"{where}.depends_on", "expected a list or a mapping")
        for target, condition, required, tline in entries:
            if target not in active:
                if not required:
                    continue
                if target in services:
                    raise self.rep.error(
                        tline,
                        f"{where}.depends_on",
                        f"service {target!r} is needed by {name!r} not in an active profile",
                        f"add a profile of {name!r} to {target!r}, or activate its profile",
                    )
                raise self.rep.error(
                    tline,
                    f"{where}.depends_on",
                    f"depends on undefined service {target!r}",
                    "fix the name or add the service",
                )
            out[target] = condition
        return out

    def service_network_options(
        self, name: str, body: Map, where: str, options: dict[str, Any]
    ) -> None:
        value = body.get("networks")
        if "network_mode" in body:
            raise self.rep.error(
                body.line_of("network_mode"),
                f"{where}.network_mode",
                "not supported",
                "services join the stack's networks",
            )
        joined: dict[str, tuple[str, ...]] = {}
        if value is None:
            self.service_networks[name] = {DEFAULT_NETWORK: ()}
            return
        if isinstance(value, Seq):
            joined = {str(n): () for n in value}
        elif isinstance(value, Map):
            for net, spec in value.items():
                aliases: tuple[str, ...] = ()
                if isinstance(spec, Map):
                    for key in spec:
                        if key == "aliases":
                            aliases = tuple(str(a) for a in spec[key] or ())
                        elif key in (
                            "ipv4_address",
                            "ipv6_address",
                            "priority",
                            "gw_priority",
                            "mac_address",
                            "link_local_ips",
                            "driver_opts",
                            "interface_name",
                        ):
                            raise self.rep.error(
                                spec.line_of(key),
                                f"{where}.networks.{net}.{key}",
                                "not supported",
                                "envkit assigns addresses itself",
                            )
                        elif not key.startswith("x-"):
                            raise self.rep.error(
                                spec.line_of(key), f"{where}.networks.{net}.{key}", "unknown key"
                            )
                joined[str(net)] = aliases
        else:
            raise self.rep.error(
                body.line_of("networks"), f"{where}.networks", "expected a list or a mapping"
            )
        networks = []
        for net in joined:
            found = self.networks.get(net)
            if found is None:
                if net != DEFAULT_NETWORK:
                    raise self.rep.error(
                        body.line_of("networks"),
                        f"{where}.networks",
                        f"refers to undefined network {net}",
                        f"declare it under the top-level networks: ({net}: {{}})",
                    )
                found = Network(DEFAULT_NETWORK)
            networks.append(found)
        options["networks"] = networks
        options["aliases"] = sorted({a for names in joined.values() for a in names})
        self.service_networks[name] = joined

    def limits(self, body: Map, where: str, options: dict[str, Any]) -> None:
        if body.get("mem_limit") is not None:
            options["memory"] = body["mem_limit"]
        if body.get("cpus") is not None:
            options["cpus"] = float(body["cpus"])
        if body.get("pids_limit") is not None and body["pids_limit"] not in (0, -1):
            options["pids_limit"] = body["pids_limit"]
        if body.get("scale") not in (None, 1):
            raise self.rep.error(
                body.line_of("scale"),
                f"{where}.scale",
                "one container per service is supported",
                "remove scale:",
            )
        deploy = body.get("deploy")
        if deploy is None:
            return
        if not isinstance(deploy, Map):
            raise self.rep.error(body.line_of("deploy"), f"{where}.deploy", "expected a mapping")
        for key, value in deploy.items():
            kwhere, kline = f"{where}.deploy.{key}", deploy.line_of(key)
            if key == "replicas" and value == 1:
                continue
            if key != "resources":
                raise self.rep.error(
                    kline, kwhere, "not supported", "envkit reads deploy.resources.limits only"
                )
            for part, limits in (value or {}).items():
                if part == "reservations":
                    self.rep.warn(
                        value.line_of(part),
                        f"{kwhere}.reservations",
                        "ignored: envkit applies limits only",
                    )
                    continue
                if part != "limits":
                    raise self.rep.error(value.line_of(part), f"{kwhere}.{part}", "not supported")
                for lim, amount in (limits or {}).items():
                    if lim == "memory":
                        options["memory"] = amount
                    elif lim == "cpus":
                        options["cpus"] = float(amount)
                    elif lim == "pids":
                        options["pids_limit"] = amount
                    else:
                        raise self.rep.error(
                            limits.line_of(lim), f"{kwhere}.limits.{lim}", "not supported"
                        )


def _scalar_text(value: Any) -> str:
    """A YAML scalar as the string compose makes of it (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
