"""A Stack as a compose.yaml other engines run: compose's normalised form
(:func:`envkit.compose.normalise.stack_to_compose`, the mapping ``envkit config`` prints)
of the stack with every image pinned by digest, and host paths made absolute.

Importing the file again (``Stack.from_compose``) gives the pinned stack back, with
compose's two labels on each service (see :func:`pinned_stack`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from envkit.compose.export_images import ImageFacts
from envkit.compose.export_model import ExportWarning
from envkit.compose.normalise import stack_to_compose
from envkit.spec.image import Image
from envkit.spec.stack import Stack


def pinned_stack(stack: Stack, images: Mapping[str, ImageFacts]) -> Stack:
    """``stack`` with each service's image replaced by its registry reference by digest."""
    services = []
    for service in stack.services:
        clone = copy.copy(service)
        object.__setattr__(clone, "image", Image.from_(images[service.name].ref))
        services.append(clone)
    pinned = Stack(stack.name, services=services, volumes=stack.volumes, networks=stack.networks)
    return pinned.with_base_dir(stack.base_dir) if stack.base_dir is not None else pinned


def stack_to_compose_file(
    stack: Stack, images: Mapping[str, ImageFacts]
) -> tuple[dict[str, Any], list[ExportWarning]]:
    """The compose mapping of ``stack`` with ``images`` by service, and the warnings."""
    warnings: list[ExportWarning] = []
    pinned = pinned_stack(stack, images)
    data = stack_to_compose(pinned)
    base = str(stack.base_dir or os.getcwd()).replace("$", "$$")
    for service in pinned.services:
        body = data["services"][service.name]
        for mount in body.get("volumes", []):
            if mount["type"] == "bind" and not os.path.isabs(os.path.expanduser(mount["source"])):
                mount["source"] = os.path.normpath(os.path.join(base, mount["source"]))
        if service.env_file:
            body["env_file"] = [
                os.path.normpath(os.path.join(base, f.replace("$", "$$"))) for f in service.env_file
            ]
        if service.ready:
            kinds = ", ".join(r.kind for r in service.ready)
            warnings.append(
                ExportWarning(
                    service.name,
                    "ready",
                    f"envkit's readiness probes ({kinds}) have no compose key: not exported; "
                    "a healthcheck is",
                )
            )
        for volume in service.volume_objects:
            if volume.backend != "local":
                warnings.append(
                    ExportWarning(
                        service.name,
                        f"volumes.{volume.name}",
                        f"backend {volume.backend!r} is envkit's: compose uses its local driver",
                    )
                )
    dropped = []
    for key, body in list(data.get("secrets", {}).items()):
        if "file" in body:
            if not os.path.isabs(body["file"]):
                body["file"] = os.path.normpath(os.path.join(base, body["file"]))
        elif "x-envkit-source" in body:
            dropped.append(key)
            del data["secrets"][key]
    for key in dropped:
        users = []
        for name, body in data["services"].items():
            kept = [s for s in body.get("secrets", []) if s["source"] != key]
            if len(kept) != len(body.get("secrets", [])):
                users.append(name)
                body["secrets"] = kept
                if not kept:
                    del body["secrets"]
        for name in users or [None]:
            warnings.append(
                ExportWarning(
                    name,
                    f"secrets.{key}",
                    "a secret provider plugin has no compose counterpart (file or "
                    "environment): not exported; add it to the compose file yourself",
                )
            )
    if not data.get("secrets"):
        data.pop("secrets", None)
    return data, warnings
