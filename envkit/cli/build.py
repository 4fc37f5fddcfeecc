"""``envkit build`` and ``envkit cache``: build images, move cache mounts.

``envkit build [stack.py]`` builds the image of every service of the stack (tagged
``<stack>-<service>:latest``, as compose names them); ``envkit build file.py:name -t
name:tag`` builds the Image bound to ``name`` in ``file.py``. The build context is the
file's directory unless ``--context`` says otherwise. Unpinned bases resolve through the
``envkit.lock`` of the file's directory, written when a base is new to it. Image ids go
to stdout, progress to stderr (a live view on a terminal, plain lines otherwise).
"""

from __future__ import annotations

from pathlib import Path

from envkit.cli import plain
from envkit.errors import BuildError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from envkit.build.executor import Builder
    from envkit.plugins.interfaces import Command

PROGRESS_MODES = ("auto", "plain", "tty", "quiet")

#: The options of ``envkit build`` that take a value, as :meth:`BuildCommand.configure`
#: declares them: each spelling and the attribute it sets.
_VALUED = {
    "-t": "tag",
    "--tag": "tag",
    "--context": "context",
    "--progress": "progress",
    "--stack": "stack",
}
#: What argparse sets when an option is not given.
_DEFAULTS = {
    "target": "stack.py",
    "tag": None,
    "context": None,
    "no_cache": False,
    "progress": "auto",
    "stack": None,
}


class BuildCommand:
    """``envkit build [FILE[:IMAGE]] [-t TAG] [--no-cache] [--progress MODE]``."""

    name = "build"
    help = "build the images of a stack file, or one Image of a Python file (FILE:NAME)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "target",
            nargs="?",
            default="stack.py",
            metavar="FILE[:NAME]",
            help="stack file (default: stack.py), or FILE:NAME for the Image bound to NAME",
        )
        parser.add_argument("-t", "--tag", metavar="NAME[:TAG]", help="name the built image")
        parser.add_argument(
            "--context", metavar="DIR", help="build context (default: the file's directory)"
        )
        parser.add_argument("--no-cache", action="store_true", help="execute every step")
        parser.add_argument(
            "--progress",
            choices=PROGRESS_MODES,
            default="auto",
            help="auto (live on a terminal), plain, tty or quiet",
        )
        parser.add_argument("--stack", metavar="NAME", help="the stack to build, if several")

    def run_plain(self, argv: Sequence[str]) -> int | None:
        """:meth:`run` for a command line in its plain form (:func:`plain_options`),
        without argparse; ``None`` for any other, which argparse then parses."""
        options = plain_options(argv)
        return None if options is None else self.run(options)

    def run(self, args: argparse.Namespace | plain.PlainArgs) -> int:
        from envkit.build.executor import Builder
        from envkit.build.lockfile import LockFile
        from envkit.build.progress import for_stream
        from envkit.store.store import Store

        path_text, sep, name = args.target.rpartition(":")
        one = bool(sep) and name.isidentifier() and not Path(args.target).exists()
        file = Path(path_text if one else args.target)
        progress = for_stream(mode=args.progress)
        builder = Builder(
            Store.default(),
            no_cache=args.no_cache,
            progress=progress,
            lock=LockFile.beside(file),
        )
        try:
            if one:
                return self._one(builder, file, name, args)
            return self._stack(builder, file, args)
        finally:
            progress.close()

    def _one(
        self, builder: Builder, path: Path, name: str, args: argparse.Namespace | plain.PlainArgs
    ) -> int:
        from envkit.spec.loader import load_image

        image = load_image(path, name)
        context = Path(args.context) if args.context else path.absolute().parent
        result = builder.build(image, context, tag=args.tag)
        print(result.image_id)
        return 0

    def _stack(
        self, builder: Builder, path: Path, args: argparse.Namespace | plain.PlainArgs
    ) -> int:
        from envkit.spec.loader import load_stack

        if args.tag:
            raise BuildError(
                "-t names one image, and a stack file may build several",
                hint="build one image with FILE:NAME -t TAG; stack images are named "
                "<stack>-<service>:latest",
            )
        stack = load_stack(path, args.stack)
        context = Path(args.context) if args.context else (stack.base_dir or Path.cwd())
        for service in stack.services:
            image = service.image
            if not image.steps and image.base.kind == "ref":
                continue  # a plain image reference: nothing to build (envkit pull gets it)
            tag = f"{stack.name}-{service.name}:latest"
            result = builder.build(image, context, tag=tag)
            print(f"{service.name}: {result.image_id}")
        return 0


def plain_options(argv: Sequence[str]) -> plain.PlainArgs | None:
    """What argparse makes of ``argv`` when it is in the plain form: options spelt out
    in full, each value in the next word and not starting with ``-``, a ``--progress``
    mode of :data:`PROGRESS_MODES`, at most one FILE. ``None`` for any other
    (``--help``, ``--tag=x``, ``-tx``, ``--no-c``, ``--``, an error), which argparse
    parses as always (tests/unit/cli/test_build_plain.py compares the two).
    """
    found = plain.read(argv, {"--no-cache": "no_cache"}, ["target"], 0, _DEFAULTS, _VALUED)
    if found is None or found.progress not in PROGRESS_MODES:
        return None
    return found


class CacheCommand:
    """``envkit cache export FILE`` / ``import FILE`` / ``prune``."""

    name = "cache"
    help = "move the build cache mounts between machines (export/import), or prune steps"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        export = sub.add_parser("export", help="write every cache mount to a tar file")
        export.add_argument("file", metavar="FILE")
        load = sub.add_parser("import", help="merge the cache mounts of a tar file")
        load.add_argument("file", metavar="FILE")
        prune = sub.add_parser("prune", help="drop cached build steps")
        prune.add_argument(
            "--all", action="store_true", help="every step, not only those no image uses"
        )

    def run(self, args: argparse.Namespace) -> int:
        from envkit.build import cache

        if args.action == "export":
            ids = cache.export_mounts(Path(args.file))
            print(f"exported {len(ids)} cache mount(s): {', '.join(ids) or 'none'}")
        elif args.action == "import":
            if not Path(args.file).is_file():
                raise BuildError(
                    f"{args.file}: no such file", hint="pass a file from `envkit cache export`"
                )
            ids = cache.import_mounts(Path(args.file))
            print(f"imported {len(ids)} cache mount(s): {', '.join(ids) or 'none'}")
        else:
            from envkit.store.store import Store

            report = cache.prune_cache(Store.default(), everything=args.all)
            print(f"removed {len(report.removed)} cached step(s)")
        return 0


COMMANDS: list[Command] = [BuildCommand(), CacheCommand()]
