"""The hooks envkit calls. Plugins implement any subset of them.

Every hook that contributes parts returns a sequence; envkit flattens the results of all
plugins and rejects two parts with the same name, naming both plugins.
"""

from __future__ import annotations

from collections.abc import Sequence

from envkit.plugins import hookspec

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.interfaces import Command, ImageSource, SecretProvider, VolumeBackend


@hookspec
def envkit_commands() -> Sequence[Command]:
    """Return CLI commands to add to ``envkit``.

    Each has a unique ``name``; it becomes ``envkit <name>``. Commands are built cheaply:
    import heavy modules inside ``run`` so that ``envkit --help`` stays fast.
    """
    raise NotImplementedError


@hookspec
def envkit_image_sources() -> Sequence[ImageSource]:
    """Return image sources: ways to obtain the base of an Image.

    The built-ins are ``ref`` (a name or digest, from the local store) and ``oci-archive``
    (``Image.load``); registries and Debian bootstraps come through this hook too.
    """
    raise NotImplementedError


@hookspec
def envkit_secret_providers() -> Sequence[SecretProvider]:
    """Return secret providers, selected by scheme: ``Secret(name, source="scheme:...")``.

    Built in: ``env``, ``file`` and ``cmd`` (a command's output).
    """
    raise NotImplementedError


@hookspec
def envkit_volume_backends() -> Sequence[VolumeBackend]:
    """Return volume storage backends, selected by ``Volume(backend=name)``.

    Built in: ``local`` (the default) and ``tmpfs``. A backend's ``validate`` is called
    for every volume of a stack before anything starts.
    """
    raise NotImplementedError


# -- lifecycle notifications -----------------------------------------------------------
# envkit calls these through envkit.plugins.notify, which never lets a listener's
# exception break the stack or the build; their return values are ignored.


@hookspec
def envkit_service_started(stack: str, service: str) -> None:
    """Called when a service's container of stack ``stack`` has started (its command
    runs; a health check may still be pending). ``stack`` and ``service`` are names."""


@hookspec
def envkit_service_stopped(stack: str, service: str, exit_code: int | None) -> None:
    """Called when the container of service ``service`` of stack ``stack`` has stopped.

    ``exit_code`` is the command's exit status, or ``None`` when it was killed by a
    signal or the status is unknown (the container was stopped by ``down``).
    """


@hookspec
def envkit_build_step_finished(step: str, key: str, cached: bool, seconds: float) -> None:
    """Called after each build step: ``step`` describes it (``RUN pip install ...``),
    ``key`` is its cache key (``sha256:...``), ``cached`` whether the cache answered it
    without running, ``seconds`` how long it took."""
