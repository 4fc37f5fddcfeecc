"""Steps a Dockerfile needs that the spec's Image methods cannot make yet.

Both subclass :class:`envkit.spec.steps.Copy`, so an :class:`~envkit.spec.image.Image`
holding them type-checks; an executor must test for them before ``Copy``. Their
canonical forms carry their own ``op`` so that they never share a cache key with a plain
copy. They belong in the spec (``Image.add(..., extract=True)``, ``Image.write(...)``)
once it grows those methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envkit.spec.steps import Copy


@dataclass(frozen=True)
class AddArchive(Copy):
    """``ADD archive.tar.gz /dst``: the local tar archive ``src`` extracted below ``dst``."""

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), "op": "add-archive"}


@dataclass(frozen=True)
class WriteFile(Copy):
    """``COPY <<EOF /dst``: a file at ``dst`` holding ``content`` (``src`` is unused)."""

    content: str = ""

    def canonical(self) -> dict[str, Any]:
        return {
            "op": "write-file",
            "dst": self.dst,
            "content": self.content,
            "chown": self.chown,
            "chmod": None if self.chmod is None else f"{self.chmod:04o}",
        }
