"""One hierarchy of errors for everything envkit raises on purpose.

Every error carries a message meant for a person: what went wrong, where, and how to
fix it. The CLI prints ``str(error)`` and exits with :attr:`EnvkitError.exit_code`;
a traceback is shown only with ``ENVKIT_DEBUG=1``.
"""

from __future__ import annotations


class EnvkitError(Exception):
    """Base of every error envkit raises on purpose."""

    #: Exit code the CLI uses for this error (2: bad input the user can fix).
    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class SpecError(EnvkitError, ValueError):
    """An Image, Service, Stack or other spec object was given a bad value.

    ``field`` names the offending field (``"Service('web').ports"``), ``value`` the bad
    value (never a secret's value).
    """

    def __init__(
        self,
        field: str,
        message: str,
        *,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        text = f"{field}: {message}"
        if value is not None:
            text += f" (got {value!r})"
        super().__init__(text, hint=hint)


class StackFileError(EnvkitError):
    """A stack file could not be loaded: syntax error, exception, no Stack, several Stacks."""


class ReferenceError_(EnvkitError):
    """An image reference (``name:tag``, ``name@sha256:...``) is malformed or unknown."""


class ImageNotFoundError(ReferenceError_):
    """No image with that name or digest is in the store."""


class StoreError(EnvkitError):
    """The content store is corrupt, locked too long, or a blob does not match its digest."""


class DigestMismatchError(StoreError):
    """Content read or written does not hash to the digest it was announced with."""


class LayerError(EnvkitError):
    """A layer tar is malformed or tries to write outside its root."""


class ArchiveError(EnvkitError):
    """An image archive (OCI archive, docker-archive) is malformed or unsupported."""


class BuildError(EnvkitError):
    """A build step failed."""

    exit_code = 1


class RegistryError(EnvkitError):
    """A registry refused a request or could not be reached."""


class PluginError(EnvkitError):
    """A plugin failed to load or broke a hook's contract."""


class VolumeError(EnvkitError):
    """A volume backend could not create, mount, snapshot, restore or remove a volume."""


class VolumeNotFoundError(VolumeError):
    """No volume of that name exists in the backend asked."""


class RuntimeError_(EnvkitError):
    """The container runtime could not start, run or clean up a container."""

    exit_code = 1


class NetworkError(EnvkitError):
    """A network could not be created, joined, published or torn down."""


class HomeError(EnvkitError):
    """Where envkit keeps its data (``ENVKIT_HOME``, or the temporary directory) cannot be
    written: no permission, a read-only file system, or no space left.

    Made from the ``OSError`` by :func:`envkit.settings.storage_error`, which names the
    place and the fix; the CLI turns such an ``OSError`` into this wherever it is raised.
    """
