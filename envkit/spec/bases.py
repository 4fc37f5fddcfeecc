"""What an Image starts from: a registry ref, nothing, a Debian bootstrap, an archive, a Dockerfile.

Each base has a ``kind``, the name of the image source plugin that provides it
(:class:`envkit.plugins.interfaces.ImageSource`), and ``params()``, what that plugin is
given. Paths are kept as given; the build resolves relative ones against the stack file's
directory.
"""

from __future__ import annotations

from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any


class FromRef(Value):
    """``Image.from_(ref)``: an image by name or digest (normalised reference)."""

    ref: str
    kind = "ref"

    def params(self) -> dict[str, Any]:
        return {"ref": self.ref}


class Scratch(Value):
    """``Image.scratch()``: an empty root file system."""

    kind = "scratch"

    def params(self) -> dict[str, Any]:
        return {}


class Debian(Value):
    """``Image.debian(...)``: a Debian root file system bootstrapped from a mirror."""

    suite: str
    packages: tuple[str, ...]
    variant: str
    mirror: str | None
    kind = "debian"

    def params(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "packages": list(self.packages),
            "variant": self.variant,
            "mirror": self.mirror,
        }


class Archive(Value):
    """``Image.load(path)``: an OCI archive or a docker-archive on disk."""

    path: str
    kind = "oci-archive"

    def params(self) -> dict[str, Any]:
        return {"path": self.path}


class Dockerfile(Value):
    """``Image.from_dockerfile(...)``: recorded now, imported by a later build stage.

    ``args`` are ``--build-arg`` values (sorted pairs); ``target`` the stage to build
    (None: the last one).
    """

    path: str
    context: str
    args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    kind = "dockerfile"

    def params(self) -> dict[str, Any]:
        # args and target only when given: a plain Dockerfile keeps the key it always had
        out: dict[str, Any] = {"path": self.path, "context": self.context}
        if self.args:
            out["args"] = dict(self.args)
        if self.target is not None:
            out["target"] = self.target
        return out


Base = FromRef | Scratch | Debian | Archive | Dockerfile


def base_canonical(base: Base) -> dict[str, Any]:
    """``{"kind": ..., **params}``."""
    return {"kind": base.kind, **base.params()}
