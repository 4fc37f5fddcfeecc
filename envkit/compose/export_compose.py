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
from pathlib import Path
from typing import Any

from envkit import records
from envkit.compose.export_images import ImageFacts
from envkit.compose.export_model import ExportWarning
from envkit.compose.normalise import stack_to_compose
from envkit.spec.image import Image
from envkit.spec.secret import Secret
from envkit.spec.service import Service
from envkit.spec.stack import Stack


def pinned_stack(stack: Stack, images: Mapping[str, ImageFacts]) -> Stack:
    """``stack`` as it is exported: each service's image replaced by its registry
    reference by digest, and host paths (bind mounts, secret files, env files) made
    absolute against the stack's directory, since the export is read from elsewhere."""
    base = stack.base_dir or Path.cwd()

    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(base, os.path.expanduser(path)))

    services = []
    for service in stack.services:
        clone = copy.copy(service)
        set_ = object.__setattr__
        set_(clone, "image", Image.from_(images[service.name].ref))
        set_(
            clone,
            "volumes",
            tuple(
                records.replace(m, source=absolute(m.source)) if isinstance(m.source, str) else m
                for m in service.volumes
            ),
        )
        set_(
            clone,
            "secrets",
            tuple(
                Secret(s.name, f"file:{absolute(s.location)}", required=s.required)
                if s.scheme == "file"
                else s
                for s in service.secrets
            ),
        )
        set_(clone, "env_file", tuple(absolute(f) for f in service.env_file))
        services.append(clone)
    pinned = Stack(stack.name, services=services, volumes=stack.volumes, networks=stack.networks)
    return pinned.with_base_dir(base)


def exported_stack(stack: Stack, images: Mapping[str, ImageFacts]) -> Stack:
    """The Stack a compose export holds: :func:`pinned_stack`, less what compose cannot
    express (readiness probes, secrets of provider plugins), optional secrets required.
    Loading the exported file gives this Stack back, with compose's two labels on each
    service and an ``env_file``'s variables read into ``env``."""
    pinned = pinned_stack(stack, images)
    services = []
    for service in pinned.services:
        clone = copy.copy(service)
        object.__setattr__(clone, "ready", ())
        object.__setattr__(
            clone,
            "secrets",
            tuple(Secret(s.name, s.source) for s in service.secrets if s.scheme in ("file", "env")),
        )
        services.append(clone)
    out = Stack(stack.name, services=services, volumes=stack.volumes, networks=stack.networks)
    return out.with_base_dir(pinned.base_dir or Path.cwd())


def stack_to_compose_file(
    stack: Stack, images: Mapping[str, ImageFacts]
) -> tuple[dict[str, Any], list[ExportWarning]]:
    """The compose mapping of ``stack`` with ``images`` by service, and the warnings."""
    warnings: list[ExportWarning] = []
    exported = exported_stack(stack, images)
    data = stack_to_compose(exported)
    for service in exported.services:
        if service.env_file:
            body = data["services"][service.name]
            body["env_file"] = [f.replace("$", "$$") for f in service.env_file]
    for service in stack.services:
        warnings.extend(_warnings(service))
    return data, warnings


def _warnings(service: Service) -> list[ExportWarning]:
    out = []
    if service.ready:
        kinds = ", ".join(r.kind for r in service.ready)
        out.append(
            ExportWarning(
                service.name,
                "ready",
                f"envkit's readiness probes ({kinds}) have no compose key: not exported; "
                "a healthcheck is",
            )
        )
    for volume in service.volume_objects:
        if volume.backend != "local":
            out.append(
                ExportWarning(
                    service.name,
                    f"volumes.{volume.name}",
                    f"backend {volume.backend!r} is envkit's: compose uses its local driver",
                )
            )
    for secret in service.secrets:
        if secret.scheme not in ("file", "env"):
            out.append(
                ExportWarning(
                    service.name,
                    f"secrets.{secret.name}",
                    f"the secret provider {secret.scheme!r} has no compose counterpart (file "
                    "or environment): not exported; add it to the compose file yourself",
                )
            )
        elif not secret.required:
            out.append(
                ExportWarning(
                    service.name,
                    f"secrets.{secret.name}",
                    "required=False has no compose counterpart: compose needs the "
                    f"{'file' if secret.scheme == 'file' else 'variable'} {secret.location}",
                )
            )
    return out
