"""The steps of an Image, one frozen value per builder method.

Values here are already validated and normalised by the :class:`~envkit.spec.image.Image`
method that made them; the build matches on their types. ``canonical()`` of each is one
entry of the Image's ``"steps"`` list.
"""

from __future__ import annotations

from envkit.records import Value
from envkit.spec.canonical import pairs_to_dict
from envkit.spec.healthcheck import Healthcheck
from envkit.spec.secret import Secret

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any, Literal

    from envkit.spec.image import Image

Pairs = tuple[tuple[str, str], ...]


class Run(Value):
    """Run ``argv`` in the image being built (a shell command is ``/bin/sh -c``)."""

    argv: tuple[str, ...]
    secrets: tuple[Secret, ...] = ()
    caches: Pairs = ()  # (target path, cache id)
    network: Literal["host", "none"] | None = None
    env: Pairs = ()
    binds: Pairs = ()  # (target path, build context source), read-only for the step

    def canonical(self) -> dict[str, Any]:
        return {
            "op": "run",
            "argv": list(self.argv),
            "secrets": [s.canonical() for s in self.secrets],
            "caches": pairs_to_dict(self.caches),
            "network": self.network,
            "env": pairs_to_dict(self.env),
            # only when given: a run without binds keeps the key it always had
            **({"binds": pairs_to_dict(self.binds)} if self.binds else {}),
        }


class Copy(Value):
    """Copy ``src`` (build context, or ``from_``'s file system) to ``dst``."""

    src: str
    dst: str
    from_: Image | None = None
    ignore: tuple[str, ...] = ()
    chown: str | None = None
    chmod: int | None = None

    def canonical(self) -> dict[str, Any]:
        return {
            "op": "copy",
            "src": self.src,
            "dst": self.dst,
            "from": None if self.from_ is None else self.from_.canonical(),
            "ignore": list(self.ignore),
            "chown": self.chown,
            "chmod": None if self.chmod is None else f"{self.chmod:04o}",
        }


class Env(Value):
    """Set environment variables."""

    values: Pairs

    def canonical(self) -> dict[str, Any]:
        return {"op": "env", "values": pairs_to_dict(self.values)}


class Workdir(Value):
    """Set (and create) the working directory."""

    path: str

    def canonical(self) -> dict[str, Any]:
        return {"op": "workdir", "path": self.path}


class User(Value):
    """Set the user later steps and containers run as."""

    user: str

    def canonical(self) -> dict[str, Any]:
        return {"op": "user", "user": self.user}


class Expose(Value):
    """Declare a port the image listens on."""

    port: int
    proto: str = "tcp"

    def canonical(self) -> dict[str, Any]:
        return {"op": "expose", "port": self.port, "proto": self.proto}


class Entrypoint(Value):
    """Set the entrypoint (exec form; a shell command is ``/bin/sh -c``)."""

    argv: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        return {"op": "entrypoint", "argv": list(self.argv)}


class Cmd(Value):
    """Set the default command (arguments of the entrypoint, if any)."""

    argv: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        return {"op": "cmd", "argv": list(self.argv)}


class Label(Value):
    """Add labels to the image config."""

    values: Pairs

    def canonical(self) -> dict[str, Any]:
        return {"op": "label", "values": pairs_to_dict(self.values)}


class SetHealthcheck(Value):
    """Set the image's health check."""

    healthcheck: Healthcheck

    def canonical(self) -> dict[str, Any]:
        return {"op": "healthcheck", "healthcheck": self.healthcheck.canonical()}


Step = Run | Copy | Env | Workdir | User | Expose | Entrypoint | Cmd | Label | SetHealthcheck
