"""The README written beside exported Kubernetes manifests.

Secrets are referenced by name in the manifests and never written: the README gives the
``kubectl create secret`` command that makes each one from where its value lives (a
file, an environment variable), so the value goes from there to the cluster only.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from envkit.compose.export_model import ExportWarning
from envkit.compose.kubernetes import KubernetesExport, secret_name
from envkit.spec.secret import Secret
from envkit.spec.stack import Stack


def runtime_secrets(stack: Stack) -> list[Secret]:
    """The secrets the services mount (build secrets stay out of the cluster)."""
    found = {s.name: s for service in stack.services for s in service.secrets}
    return [found[n] for n in sorted(found)]


def secret_commands(stack: Stack, namespace: str | None = None) -> list[str]:
    """One ``kubectl create secret generic`` command per secret the services mount."""
    ns = f" -n {shlex.quote(namespace)}" if namespace else ""
    lines = []
    for secret in runtime_secrets(stack):
        name = secret_name(stack, secret)
        if secret.scheme == "env":
            source = f'--from-literal={secret.name}="${{{secret.location}}}"'
        elif secret.scheme == "file":
            source = f"--from-file={shlex.quote(f'{secret.name}={secret.location}')}"
        else:
            source = f"--from-file={secret.name}=PATH-OF-THE-VALUE  # from {secret.source}"
        lines.append(f"kubectl{ns} create secret generic {name} {source}")
    return lines


def readme(
    stack: Stack,
    result: KubernetesExport,
    files: Sequence[str],
    images: dict[str, str],
    warnings: Sequence[ExportWarning],
    namespace: str | None = None,
) -> str:
    """The README.md of an export directory."""
    ns = f" -n {namespace}" if namespace else ""
    out = [
        f"# {stack.name}: Kubernetes manifests",
        "",
        "Written by `envkit export --format kubernetes` (apps/v1 and v1 objects only).",
        "",
    ]
    commands = secret_commands(stack, namespace)
    if commands:
        where = f"`{stack.base_dir}`" if stack.base_dir else "the stack's directory"
        out += [
            "## 1. Create the secrets",
            "",
            "The manifests reference these Secrets by name; their values are in no file "
            f"here. Run from {where} (file paths are relative to it), with the variables set:",
            "",
            "```sh",
            *commands,
            "```",
            "",
        ]
    out += [
        f"## {2 if commands else 1}. Apply",
        "",
        "```sh",
        f"kubectl{ns} apply -f .",
        "```",
        "",
        "| file |",
        "|---|",
        *(f"| `{f}` |" for f in files),
        "",
        "## Images (by digest)",
        "",
        *(f"- {service}: `{ref}`" for service, ref in sorted(images.items())),
        "",
    ]
    if result.published:
        out += ["## Published ports", ""]
        for service, svc, port, target, proto in result.published:
            if not svc.endswith("-published"):
                out.append(
                    f"- {service} {target}/{proto}: `kubectl{ns} port-forward service/{svc} "
                    f"{port}:{target}`"
                )
            else:
                out.append(f"- {service} {target}/{proto}: Service `{svc}` port {port}")
        out.append("")
    if warnings:
        out += ["## Not exported", "", *(f"- {w}" for w in warnings), ""]
    return "\n".join(out)
