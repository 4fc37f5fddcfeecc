"""What an export gives back: the files, the images by digest, and the warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envkit.records import Record, Value, field

#: The formats :func:`envkit.compose.export.export` writes.
FORMATS = ("kubernetes", "compose")
#: ``--expose``: the Kubernetes Service type of published ports.
EXPOSE_TYPES = {"clusterip": "ClusterIP", "nodeport": "NodePort", "loadbalancer": "LoadBalancer"}


class ExportWarning(Value):
    """Something of the stack the target format cannot express, named by service (or
    ``None`` for the stack as a whole) and key, with what the export did instead."""

    service: str | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"service {self.service!r}" if self.service is not None else "stack"
        return f"{where}: {self.key}: {self.message}"


class ExportResult(Record):
    """An export: ``text`` is the whole output (one multi-document YAML for Kubernetes,
    the compose.yaml for compose); ``objects`` the Kubernetes objects and ``readme``
    the README written beside them; ``files`` the files written (none without a
    directory) and ``removed`` the stale manifests taken away; ``images`` each
    service's image by digest."""

    format: str
    text: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    readme: str = ""
    files: list[Path] = field(default_factory=list)
    #: manifests of an earlier export of the stack into the same directory, removed
    removed: list[Path] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    warnings: list[ExportWarning] = field(default_factory=list)
