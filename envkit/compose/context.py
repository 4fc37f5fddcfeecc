"""The state one compose file's loading shares: the document, the variables, the
Reporter, what the top-level sections declare, and the helpers every part uses."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from envkit.compose.errors import Reporter
from envkit.compose.model import BuildSpec
from envkit.compose.yaml_lines import Map
from envkit.errors import SpecError
from envkit.spec.image import Image
from envkit.spec.network import Network
from envkit.spec.secret import Secret
from envkit.spec.volume import Volume

_T = TypeVar("_T")
_NAME_CHARS = re.compile(r"[^a-z0-9_-]+")
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Context:
    """One compose file being read (see :func:`envkit.compose.loader.load`)."""

    def __init__(
        self,
        rep: Reporter,
        doc: Map,
        base: Path,
        env: Mapping[str, str],
        profiles: Sequence[str] | None,
        project_name: str | None,
    ) -> None:
        self.home: str | None = None
        self.project = ""
        #: variables only .env sets (not the environment envkit runs in)
        self.dotenv_only: set[str] = set()
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
        #: the Image of each ``image:`` name a service builds
        self.built_refs: dict[str, Image] = {}
        self.builds: dict[str, BuildSpec] = {}
        self.service_networks: dict[str, dict[str, tuple[str, ...]]] = {}
        #: names other services' ``links: [SERVICE:ALIAS]`` give each service
        self.link_aliases: dict[str, set[str]] = {}

    # -- helpers -------------------------------------------------------------------------

    def mapping(self, parent: Map, key: str) -> Map:
        """``parent[key]``, which must be a mapping (empty when absent or null)."""
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


def scalar_text(value: Any) -> str:
    """A YAML scalar as the string compose makes of it (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
