"""``envkit export``: a stack as Kubernetes manifests or a compose.yaml, images by digest.

``envkit export [FILE] --format kubernetes|compose [-o DIR] [--push REGISTRY]
[--namespace NS] [--expose clusterip|nodeport|loadbalancer] [--strict]``. Without
``-o`` the output goes to stdout (Kubernetes: one multi-document YAML); with it, one
file per object and a README (Kubernetes) or ``DIR/compose.yaml``. Warnings (what the
format cannot express) go to stderr; build and push progress too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import Command


class ExportCommand:
    """Export a stack file for Kubernetes or Docker Compose."""

    name = "export"
    help = "write a stack as Kubernetes manifests or a compose.yaml, images by digest"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from envkit.cli.stack_cmds import add_file_arguments, add_profile_option

        add_file_arguments(parser, "export")
        parser.add_argument(
            "--format", required=True, choices=["kubernetes", "compose"], help="what to write"
        )
        parser.add_argument(
            "-o", "--output", metavar="DIR",
            help="directory to write (Kubernetes: a file per object and README.md); "
            "default: stdout",
        )  # fmt: skip
        parser.add_argument(
            "--push", metavar="REGISTRY",
            help="build the stack's own images and push them to REGISTRY[/PREFIX] "
            "(e.g. registry.example.org/team); they are then named by digest",
        )  # fmt: skip
        parser.add_argument("--namespace", metavar="NS", help="Kubernetes namespace")
        parser.add_argument(
            "--expose",
            choices=["clusterip", "nodeport", "loadbalancer"],
            default="clusterip",
            help="Kubernetes Service type of published ports (default: clusterip)",
        )
        parser.add_argument(
            "--wait-image", metavar="REF", default="busybox:latest",
            help="image (pulled, or NAME@sha256:...) of the init containers that wait for "
            "a healthy dependency (default: busybox:latest)",
        )  # fmt: skip
        parser.add_argument(
            "--strict", action="store_true", help="what cannot be exported is an error"
        )
        add_profile_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from envkit.cli.stack_cmds import DEFAULT_FILE, default_files, load_file
        from envkit.compose.export import export

        named = [args.file_option, *(getattr(args, "more_files", None) or []), args.file]
        if any(named):
            paths = [Path(f) for f in named if f]
        else:
            paths = default_files() or [Path(DEFAULT_FILE)]
        stack = load_file(paths[0], args.stack, args.profile, more=paths[1:])
        result = export(
            stack,
            args.output,
            format=args.format,
            push=args.push,
            namespace=args.namespace,
            expose=args.expose,
            strict=args.strict,
            wait_image=args.wait_image,
            progress=True,
        )
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.output is None:
            sys.stdout.write(result.text)
        else:
            for path in result.removed:
                print(f"removed {path} (no longer in the stack)", file=sys.stderr)
            for path in result.files:
                print(path)
        return 0


COMMANDS: list[Command] = [ExportCommand()]
