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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from envkit.compose import dotenv, keys
from envkit.compose.errors import Reporter
from envkit.compose.interpolate import substitute
from envkit.compose.merge import merge_documents, resolve_extends
from envkit.compose.model import BuildSpec, ComposeProject
from envkit.compose.resources import Resources
from envkit.compose.services import Services
from envkit.compose.yaml_lines import Map, Seq, drop_resets
from envkit.compose.yaml_lines import load as load_yaml
from envkit.errors import InterpolationError, SpecError, StackFileError
from envkit.spec.network import DEFAULT_NETWORK
from envkit.spec.service import Service
from envkit.spec.stack import Stack

#: The files compose looks for when none is given, in its order of preference.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")

__all__ = [
    "COMPOSE_FILES",
    "BuildSpec",
    "ComposeProject",
    "compose_files_from_env",
    "find_compose_file",
    "is_compose_file",
    "load",
    "override_files",
]


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


def override_files(path: Path) -> list[Path]:
    """The override files compose merges into the compose file ``path`` when it found
    that file itself (``compose.override.yaml`` and the other names, beside it)."""
    names = [n.replace("compose.", "compose.override.", 1) for n in COMPOSE_FILES]
    return [path.parent / n for n in names if (path.parent / n).is_file()]


def compose_files_from_env(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The files ``$COMPOSE_FILE`` names (separated by ``$COMPOSE_PATH_SEPARATOR``, by
    default ``:``), the compose files compose merges when none is named; ``[]`` when
    unset."""
    env = os.environ if environ is None else environ
    separator = env.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
    return [Path(f) for f in env.get("COMPOSE_FILE", "").split(separator) if f]


def is_compose_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a compose file (``.yaml``/``.yml``) rather than a stack.py."""
    return Path(path).suffix in (".yaml", ".yml")


def load(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    environ: Mapping[str, str] | None = None,
    profiles: Sequence[str] | None = None,
    project_name: str | None = None,
) -> ComposeProject:
    """Load the compose file at ``path`` (or several, merged as compose merges them:
    :mod:`envkit.compose.merge`; the first file's directory is the project's).

    ``environ`` replaces the process environment for interpolation (``.env`` beside
    the file fills in what it does not set); ``profiles`` replaces ``COMPOSE_PROFILES``;
    ``project_name`` replaces ``COMPOSE_PROJECT_NAME`` and the file's ``name:``.
    Raises :class:`~envkit.errors.StackFileError` naming ``file:line`` and the key.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths:
        raise StackFileError("no compose file given")
    file = Path(paths[0])
    base = file.absolute().parent
    rep = Reporter(str(paths[0]))
    process = os.environ if environ is None else environ
    env = _environment(base, process)
    docs = [_read(Path(p), str(p)) for p in paths]
    for doc in docs:
        if "name" in doc:
            doc["name"] = _one(doc["name"], rep, env, "name", doc.line_of("name"))
    named = [d for d in docs if d.get("name")]
    project = _Project(rep, named[-1] if named else docs[0], base, env, profiles, project_name)
    project.home = process.get("HOME")
    project.dotenv_only = set(env) - set(process)
    name = project.name()
    # The project name is a variable of its own for the rest of the files (compose-spec).
    project.env = env = {**env, "COMPOSE_PROJECT_NAME": name}
    project.project = name
    for doc in docs:
        _interpolate(doc, rep, env, "")
    merged = merge_documents(rep, docs) if len(docs) > 1 else docs[0]

    def read_other(other: Path) -> Map:
        found = _read(other, str(other))
        _interpolate(found, rep, env, "")
        return found

    resolve_extends(rep, merged, read_other, base)
    project.doc = drop_resets(merged)
    return project.build(file, name)


def _read(file: Path, shown: str) -> Map:
    """The top-level mapping of compose file ``file``."""
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
    doc = load_yaml(text, shown)
    if doc is None:
        raise StackFileError(f"{shown}:1: empty compose file", hint="add a services: section")
    if not isinstance(doc, Map):
        raise StackFileError(
            f"{shown}:1: expected a mapping at the top level", hint="start with services:"
        )
    return doc


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


class _Project(Resources, Services):
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
        self.read_links(services, active)
        built: list[Service] = []
        # Services that build first: another may run the image one of them builds.
        builders = [n for n in active if services[n].get("build") is not None]
        for svc_name in [*builders, *(n for n in active if n not in builders)]:
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
