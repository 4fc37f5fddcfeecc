"""The seam between the spec objects and the layers that act on them.

``spec`` is data: it imports only the foundation and :mod:`envkit.oci` (references). The
methods that act (:meth:`Image.build <envkit.spec.Image.build>`,
:meth:`Stack.up <envkit.spec.Stack.up>`, :meth:`Stack.from_compose
<envkit.spec.Stack.from_compose>`, :meth:`Stack.export <envkit.spec.Stack.export>`,
:meth:`Secret.reveal <envkit.spec.Secret.reveal>`) stay as thin methods that call the
:class:`Engine` the top layer registered in :data:`envkit.wiring.spec_engine`.
``envkit/__init__.py`` registers envkit's own (:class:`envkit.builtin.engine.BuiltinEngine`)
and Python runs it before any ``envkit.*`` module, so the engine is always there.
"""

from __future__ import annotations

from envkit import wiring
from envkit.errors import EnvkitError

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence
    from typing import Protocol

    from envkit.build.executor import BuildResult
    from envkit.build.progress import Progress
    from envkit.compose.export_model import ExportResult
    from envkit.spec.image import Image
    from envkit.spec.stack import Stack
    from envkit.stack.api import RunningStack
else:
    Protocol = object  # only type checkers read the protocol; typing costs ~2 ms of start-up


class Engine(Protocol):
    """What the spec objects' acting methods need from the layers above them."""

    def build(
        self,
        image: Image,
        context: str | os.PathLike[str],
        *,
        tag: str | None,
        no_cache: bool,
        progress: Progress | None,
    ) -> BuildResult:
        """Build ``image`` into the local store (:func:`envkit.build.executor.build`)."""
        ...

    def up(
        self, stack: Stack, services: Sequence[str], *, timeout: float, pull: str
    ) -> RunningStack:
        """Start ``stack`` (:func:`envkit.stack.api.up`)."""
        ...

    def load_compose(
        self,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None,
        profiles: Sequence[str] | None,
        stacklevel: int,
    ) -> Stack:
        """The Stack of a compose file (:func:`envkit.compose.load_stack`)."""
        ...

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
        """Write ``stack`` for another engine (:func:`envkit.compose.export.export`)."""
        ...

    def read_secret(self, scheme: str, location: str) -> bytes | None:
        """The value at ``location`` from the secret provider of ``scheme``; ``None`` when
        it has none."""
        ...


def engine() -> Engine:
    """The registered engine."""
    if wiring.spec_engine is None:  # only when envkit/__init__.py was bypassed
        raise EnvkitError(
            "no engine is registered for the spec objects",
            hint="import envkit (its __init__ registers it) before calling build() or up()",
        )
    return wiring.spec_engine
