"""``envkit export`` and ``Stack.export``: hand a stack to another engine.

:func:`export` pins every image by digest (building and pushing what the stack builds,
see :mod:`envkit.compose.export_images`), then writes the stack as Kubernetes objects
(:mod:`envkit.compose.kubernetes`: one file per object and a README with the commands
that create the Secrets) or as a compose.yaml (:mod:`envkit.compose.export_compose`).
Everything the format cannot express is an :class:`ExportWarning`; ``strict=True``
makes them one error (exit 2) and nothing is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envkit.compose.export_model import EXPOSE_TYPES, FORMATS, ExportResult, ExportWarning
from envkit.errors import EnvkitError
from envkit.spec.stack import Stack

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.compose.export_images import ImageFacts
    from envkit.store.store import Store

#: The image Kubernetes init containers wait with (``depends_on`` healthy): a shell
#: and busybox's ``nc``. Pinned by digest like every image (pull it first).
DEFAULT_WAIT_IMAGE = "busybox:latest"

_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def export(
    stack: Stack,
    directory: str | os.PathLike[str] | None = None,
    *,
    format: str = "kubernetes",
    push: str | None = None,
    namespace: str | None = None,
    expose: str = "clusterip",
    strict: bool = False,
    wait_image: str = DEFAULT_WAIT_IMAGE,
    store: Store | None = None,
    progress: bool = False,
) -> ExportResult:
    """Export ``stack`` in ``format`` (``kubernetes`` or ``compose``) into ``directory``
    (created; ``None``: nothing written, the output is :attr:`ExportResult.text`).

    ``push`` (``REGISTRY[/PREFIX]``) builds and pushes the images the stack builds;
    ``namespace`` and ``expose`` (``clusterip``, ``nodeport``, ``loadbalancer``: the
    Service type of published ports) are for Kubernetes. Raises
    :class:`~envkit.errors.EnvkitError` for bad options, images that are in no
    registry, and (``strict``) any warning.
    """
    _check_options(format, namespace, expose)
    # lazy for start-up: bad options are reported before the store is opened (downward)
    from envkit.compose.export_images import pin_images
    from envkit.store.store import Store

    store = store or Store.default()
    needs_wait = format == "kubernetes" and any(
        c == "healthy" for s in stack.services for _, c in s.depends_on
    )
    facts, extras = pin_images(
        stack,
        push=push,
        extra=[wait_image] if needs_wait else [],
        store=store,
        progress=progress,
    )
    if format == "kubernetes":
        wait = extras[wait_image].ref if needs_wait else None
        result = _kubernetes(stack, facts, namespace, expose, wait, store)
    else:
        result = _compose(stack, facts)
    result.images = {name: f.ref for name, f in facts.items()}
    if strict and result.warnings:
        raise EnvkitError(
            f"{len(result.warnings)} thing(s) of stack {stack.name!r} cannot be exported "
            f"to {format} (--strict):\n  " + "\n  ".join(str(w) for w in result.warnings),
            hint="change the stack, or export without --strict to get them as warnings",
        )
    if directory is not None:
        _write(Path(directory), result)
    return result


def _check_options(format: str, namespace: str | None, expose: str) -> None:
    if format not in FORMATS:
        raise EnvkitError(
            f"unknown export format {format!r}", hint=f"use one of: {', '.join(FORMATS)}"
        )
    if expose not in EXPOSE_TYPES:
        raise EnvkitError(
            f"--expose {expose!r}: unknown Service type",
            hint=f"use one of: {', '.join(EXPOSE_TYPES)}",
        )
    if namespace is not None:
        if format != "kubernetes":
            raise EnvkitError("--namespace is for --format kubernetes")
        if not _NAMESPACE_RE.match(namespace) or len(namespace) > 63:
            raise EnvkitError(
                f"--namespace {namespace!r}: not a Kubernetes namespace name",
                hint="lowercase letters, digits and '-', starting and ending with a letter "
                "or digit, at most 63 characters",
            )
    if expose != "clusterip" and format != "kubernetes":
        raise EnvkitError("--expose is for --format kubernetes")


def _dump(data: Any) -> str:
    """Block YAML without anchors or aliases (each object stands alone)."""
    import yaml  # lazy for start-up: PyYAML only when YAML is written

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    text: str = yaml.dump(
        data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=1 << 16
    )
    return text


def _kubernetes(
    stack: Stack,
    images: Mapping[str, ImageFacts],
    namespace: str | None,
    expose: str,
    wait: str | None,
    store: Store,
) -> ExportResult:
    # lazy: only the format asked for is loaded
    from envkit.compose.kubernetes import stack_to_kubernetes
    from envkit.compose.kubernetes_readme import readme, secret_commands

    exported = stack_to_kubernetes(
        stack, images, namespace=namespace, expose=expose, wait_image=wait, store=store
    )
    header = [f"# {line}" for line in secret_commands(stack, namespace)]
    if header:
        header.insert(0, "# create the Secrets first (their values are in no file):")
    documents = [_dump(obj) for obj in exported.objects]
    text = "".join(line + "\n" for line in header) + "---\n".join(documents)
    refs = {name: facts.ref for name, facts in images.items()}
    files = [file_name(obj) for obj in exported.objects]
    return ExportResult(
        "kubernetes",
        text,
        objects=exported.objects,
        readme=readme(stack, exported, files, refs, exported.warnings, namespace),
        warnings=list(exported.warnings),
    )


def _compose(stack: Stack, images: Mapping[str, ImageFacts]) -> ExportResult:
    from envkit.compose.export_compose import stack_to_compose_file  # lazy: this format only

    data, warnings = stack_to_compose_file(stack, images)
    return ExportResult("compose", _dump(data), warnings=warnings)


def file_name(obj: dict[str, Any]) -> str:
    """``NAME-KIND.yaml`` (``db-statefulset.yaml``)."""
    return f"{obj['metadata']['name']}-{str(obj['kind']).lower()}.yaml"


def _write(directory: Path, result: ExportResult) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if result.format == "compose":
        written = {"compose.yaml": result.text}
    else:
        written = {file_name(obj): _dump(obj) for obj in result.objects}
        written["README.md"] = result.readme
        result.removed = _stale(directory, result.objects, set(written))
    for name, text in written.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        result.files.append(path)
    for path in result.removed:
        path.unlink()


def _stale(directory: Path, objects: list[dict[str, Any]], keep: set[str]) -> list[Path]:
    """Manifests an earlier export of the same stack wrote into ``directory`` that this
    one does not (a service removed since): left there, ``kubectl apply -f DIR`` would
    bring them back. Only files named as the export names them and labelled as part of
    the stack are taken."""
    # lazy: PyYAML and the Kubernetes writer only when a directory is rewritten
    import yaml

    from envkit.compose.kubernetes import PART_OF_LABEL

    part_of = {o["metadata"]["labels"].get(PART_OF_LABEL) for o in objects}
    kinds = {"Service", "Deployment", "StatefulSet", "PersistentVolumeClaim"}
    stale = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name in keep:
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(data, dict) or data.get("kind") not in kinds:
            continue
        meta = data.get("metadata")
        labels = meta.get("labels") if isinstance(meta, dict) else None
        if (
            isinstance(labels, dict)
            and labels.get(PART_OF_LABEL) in part_of
            and path.name == file_name(data)
        ):
            stale.append(path)
    return stale


__all__ = ["DEFAULT_WAIT_IMAGE", "ExportResult", "ExportWarning", "export", "file_name"]
