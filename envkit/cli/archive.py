"""``envkit load`` and ``envkit save``: image archives, as ``docker load`` / ``docker save``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envkit.errors import ArchiveError
from envkit.plugins.interfaces import Command


class LoadCommand:
    """``envkit load [-i FILE | FILE]``: OCI or docker archives, plain or compressed."""

    name = "load"
    help = "load images from an OCI or docker archive (a file, or stdin)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", nargs="?", metavar="FILE", help="archive to read")
        parser.add_argument(
            "-i", "--input", metavar="FILE", help="archive to read (default: stdin)"
        )
        parser.add_argument("-q", "--quiet", action="store_true", help="print only what was loaded")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.oci.archive_read import load_archive
        from envkit.oci.reference import parse
        from envkit.store.store import Store

        if args.file and args.input and args.file != args.input:
            raise ArchiveError(
                f"two archives given ({args.input} and {args.file})",
                hint="load one archive per command",
            )
        path = args.input or args.file
        store = Store.default()
        if path and path != "-":
            images = load_archive(Path(path), store)
        else:
            if sys.stdin.isatty():
                raise ArchiveError(
                    "no archive given and stdin is a terminal",
                    hint="envkit load -i FILE, or pipe an archive: envkit load < FILE",
                )
            images = load_archive(sys.stdin.buffer, store)
        for image in images:
            if not image.refs:
                print(f"Loaded image ID: {image.config_digest}")
            for ref in image.refs:
                print(f"Loaded image: {parse(ref).familiar}")
        return 0


class SaveCommand:
    """``envkit save IMAGE... -o FILE [--format oci-archive|docker-archive]``."""

    name = "save"
    help = "save images to an OCI archive (default) or a docker archive"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("images", nargs="+", metavar="IMAGE", help="name, id or digest")
        parser.add_argument(
            "-o", "--output", metavar="FILE", help="archive to write (default: stdout)"
        )
        parser.add_argument(
            "--format",
            choices=("oci-archive", "docker-archive"),
            default="oci-archive",
            help="archive format (default: oci-archive)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.oci.archive_write import save_archive
        from envkit.store.store import Store

        store = Store.default()
        if args.output and args.output != "-":
            save_archive(store, args.images, Path(args.output), format=args.format)
            return 0
        if sys.stdout.isatty():
            raise ArchiveError(
                "refusing to write an archive to a terminal",
                hint="give -o FILE, or redirect stdout",
            )
        sys.stdout.flush()
        save_archive(store, args.images, sys.stdout.buffer, format=args.format)
        sys.stdout.buffer.flush()
        return 0


COMMANDS: list[Command] = [LoadCommand(), SaveCommand()]
