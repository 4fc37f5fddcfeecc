"""compose.yaml <-> envkit's spec objects.

:func:`load` reads a compose file as ``docker compose`` does (interpolation, ``.env``,
profiles, the project name) into a :class:`ComposeProject` holding a
:class:`~envkit.spec.Stack`; :func:`to_compose` writes a loaded project (or any Stack,
through :func:`envkit.compose.normalise.stack_to_compose`) in compose's normalised form,
the one ``envkit config`` prints. PyYAML is imported only when a file is read.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

from envkit.compose.loader import (
    COMPOSE_FILES,
    BuildSpec,
    ComposeProject,
    find_compose_file,
    is_compose_file,
    load,
)
from envkit.compose.normalise import project_to_compose as to_compose
from envkit.compose.normalise import stack_to_compose
from envkit.errors import ComposeWarning

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.spec.stack import Stack


def load_stack(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    profiles: Sequence[str] | None = None,
    stacklevel: int = 2,
) -> Stack:
    """The Stack of the compose file at ``path`` (see :func:`load`); each warning is
    issued as a :class:`ComposeWarning`."""
    project = load(path, environ=environ, profiles=profiles)
    for message in project.warnings:
        warnings.warn(message, ComposeWarning, stacklevel=stacklevel)
    return project.stack


__all__ = [
    "COMPOSE_FILES",
    "BuildSpec",
    "ComposeProject",
    "ComposeWarning",
    "find_compose_file",
    "is_compose_file",
    "load",
    "load_stack",
    "stack_to_compose",
    "to_compose",
]
