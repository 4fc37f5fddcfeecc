"""What loading a compose file gives: the Stack and what compose's normalised form shows
besides it (how each image is built, names as written)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from envkit.records import Value, field
from envkit.spec.stack import Stack


class BuildSpec(Value):
    """A service's ``build:`` as compose normalises it (absolute context)."""

    context: str
    dockerfile: str = "Dockerfile"
    args: tuple[tuple[str, str | None], ...] = ()
    target: str | None = None


class ComposeProject(Value):
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
