"""envkit's engine for the spec objects' acting methods (:mod:`envkit.spec.engine`).

``envkit/__init__.py`` registers one :class:`BuiltinEngine` in
:data:`envkit.wiring.spec_engine`. Each method imports its layer when called: importing
them all with ``envkit`` would cost every command (``envkit run`` builds nothing).
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from envkit.build.executor import BuildResult
    from envkit.build.progress import Progress
    from envkit.compose.export_model import ExportResult
    from envkit.spec.image import Image
    from envkit.spec.stack import Stack
    from envkit.stack.api import RunningStack


class BuiltinEngine:
    """Image builds, stacks, compose files and secrets, by envkit's own layers."""

    def build(
        self,
        image: Image,
        context: str | os.PathLike[str],
        *,
        tag: str | None,
        no_cache: bool,
        progress: Progress | None,
    ) -> BuildResult:
        """:func:`envkit.build.executor.build`."""
        from envkit.build.executor import build  # lazy for start-up: downward

        return build(image, context, tag=tag, no_cache=no_cache, progress=progress)

    def up(
        self, stack: Stack, services: Sequence[str], *, timeout: float, pull: str
    ) -> RunningStack:
        """:func:`envkit.stack.api.up`."""
        from envkit.stack.api import up  # lazy for start-up: downward

        return up(stack, services, timeout=timeout, pull=pull)

    def load_compose(
        self,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None,
        profiles: Sequence[str] | None,
        stacklevel: int,
    ) -> Stack:
        """:func:`envkit.compose.load_stack`."""
        from envkit.compose import load_stack  # lazy for start-up: downward

        return load_stack(path, environ=environ, profiles=profiles, stacklevel=stacklevel + 1)

    def export(
        self,
        stack: Stack,
        directory: str | os.PathLike[str] | None,
        *,
        format: str,
        push: str | None,
        namespace: str | None,
        expose: str,
        strict: bool,
        wait_image: str,
    ) -> ExportResult:
        """:func:`envkit.compose.export.export`."""
        from envkit.compose.export import export  # lazy for start-up: downward

        return export(
            stack,
            directory,
            format=format,
            push=push,
            namespace=namespace,
            expose=expose,
            strict=strict,
            wait_image=wait_image,
        )

    def read_secret(self, scheme: str, location: str) -> bytes | None:
        """The value through the plugin manager's provider of ``scheme``."""
        from envkit.plugins.manager import get_manager  # lazy for start-up: downward

        return get_manager().secret_provider(scheme).read(location)
