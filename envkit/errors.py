"""One hierarchy of errors for everything envkit raises on purpose.

Every error carries a message meant for a person: what went wrong, where, and how to
fix it. The CLI prints ``str(error)`` and exits with :attr:`EnvkitError.exit_code`;
a traceback is shown only with ``ENVKIT_DEBUG=1``.

Every exception a caller can see is defined here (``tests/unit/test_error_tree.py``
fails on one defined elsewhere, unless it is listed there as internal to its module).
The tree, with the exit codes that differ from 2 (bad input the user can fix)::

    EnvkitError
    ├── SpecError (also a ValueError)          a spec object was given a bad value
    ├── StackFileError                          a stack or compose file cannot be loaded
    ├── InterpolationError                      a compose ``${...}`` template is invalid
    │   └── MissingRequired                     ``${NAME:?reason}`` met an unset variable
    ├── SpecDataError                           JSON that is not an encoded spec object
    ├── ReferenceError_                         a malformed image reference
    ├── ImageNotFoundError                      no image of that name in the store
    ├── ImageConfigError                        an image config field of the wrong type
    ├── StoreError                              the content store is corrupt or locked
    │   ├── DigestMismatchError                 content does not hash to its digest
    │   └── BlobNotFoundError                   a blob is not in the store
    ├── LayerError                              a layer tar is malformed or escapes its root
    ├── ArchiveError                            an image archive is malformed
    ├── BuildError                  exit 1      a build step failed
    │   └── BootstrapError          exit 2      configuring Debian packages failed
    ├── ContextError                            a copy source is missing from the context
    ├── IgnorePatternError                      a malformed ignore pattern
    ├── DebianError                             bootstrapping Debian: input the user can fix
    │   ├── MirrorError                         the mirror is unreachable or lacks a file
    │   ├── SignatureError                      the Release file's signature fails
    │   ├── HashMismatchError                   a download does not match its hash
    │   ├── PackageNotFoundError                a package is not in the suite
    │   ├── UnsatisfiableError                  a dependency cannot be met
    │   └── DebFormatError                      a malformed .deb
    ├── RegistryError                           a registry refused or is unreachable
    ├── PluginError                             a plugin failed to load or broke a hook
    ├── VolumeError                             a volume backend failed
    │   └── VolumeNotFoundError                 no volume of that name
    ├── RuntimeError_               exit 1      the runtime could not run a container
    │   ├── NoFilterError           exit 2      no seccomp filter for this machine
    │   ├── UnmappedIdError         exit 2      a container uid/gid the id maps lack
    │   ├── StartError              exit 1/126/127  the container could not start
    │   ├── ChildError                          a forked helper raised a non-envkit error
    │   │   ├── ChildDied           exit -N/N   it exited or was killed without an answer
    │   │   └── ChildTimeout                    it gave no answer in time
    │   ├── MonitorError                        the container monitor failed a request
    │   └── DependencyError                     a service others depend on was not ready
    ├── NetworkError                            a network operation failed
    ├── SupervisorUnreachableError              no stack supervisor answers
    ├── BadControlRequestError                  a stack control request is malformed
    ├── PgError                                 PostgreSQL refused a statement (testing)
    └── HomeError                               ``ENVKIT_HOME`` cannot be written

    UserWarning
    └── ComposeWarning                          a compose key envkit ignores

Exceptions that never leave the module raising them are not here; the test lists each
with why (the registry transport's, the Dockerfile parser's).
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


class InterpolationError(EnvkitError):
    """A template is invalid, or a required variable (``${X:?...}``) has no value."""


class MissingRequired(InterpolationError):
    """``${NAME?reason}`` or ``${NAME:?reason}`` met an unset (or empty) variable."""

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        self.reason = reason
        text = f"required variable {variable} is missing a value"
        super().__init__(f"{text}: {reason}" if reason else text)


class SpecDataError(EnvkitError):
    """JSON data that is not the form :func:`envkit.stack.specjson.encode` gives of a spec
    object."""


class ReferenceError_(EnvkitError):
    """An image reference (``name:tag``, ``name@sha256:...``) is malformed."""


class ImageNotFoundError(EnvkitError):
    """No image with that name or digest is in the store.

    Not a :class:`ReferenceError_`: the reference is well formed, the store lacks it.
    """


class ImageConfigError(EnvkitError):
    """An image config has a field of the wrong type (``"Env": [7]``)."""


class StoreError(EnvkitError):
    """The content store is corrupt, locked too long, or a blob does not match its digest."""


class DigestMismatchError(StoreError):
    """Content read or written does not hash to the digest it was announced with."""


class BlobNotFoundError(StoreError):
    """A blob asked for by digest is not in the store."""


class LayerError(EnvkitError):
    """A layer tar is malformed or tries to write outside its root."""


class ArchiveError(EnvkitError):
    """An image archive (OCI archive, docker-archive) is malformed or unsupported."""


class BuildError(EnvkitError):
    """A build step failed."""

    exit_code = 1


class BootstrapError(BuildError):
    """Configuring the Debian packages inside the build container failed."""

    exit_code = 2


class ContextError(EnvkitError):
    """A copy source is missing from the build context, excluded, or outside it."""


class IgnorePatternError(EnvkitError):
    """An ignore pattern is malformed (an unterminated ``[``, a lone ``!``)."""


class DebianError(EnvkitError):
    """Base of the Debian bootstrap's errors (exit code 2: input the user can fix)."""


class MirrorError(DebianError):
    """The mirror could not be reached, or lacks a file the bootstrap needs."""


class SignatureError(DebianError):
    """The Release file's signature does not verify with the archive keyring."""


class HashMismatchError(DebianError):
    """A downloaded index or .deb does not match the hash its signed index announces."""


class PackageNotFoundError(DebianError):
    """A requested package (or version) is not in the suite's index."""


class UnsatisfiableError(DebianError):
    """A dependency of a selected package cannot be met by any package of the index."""


class DebFormatError(DebianError):
    """A .deb file is malformed or would write outside the root file system."""


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


class NoFilterError(RuntimeError_):
    """No seccomp filter exists for this machine: a container refuses to start unfiltered
    unless asked to (``--security-opt seccomp=unconfined``)."""

    exit_code = 2


class UnmappedIdError(RuntimeError_):
    """A container uid or gid (``--user``, an image's ``USER``, a ``chown``) that the
    user namespace's id maps do not cover: input the user can fix."""

    exit_code = 2


class StartError(RuntimeError_):
    """The container could not start; ``exit_code`` is 127/126 when exec itself failed."""

    def __init__(self, message: str, *, exit_code: int = 1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class ChildError(RuntimeError_):
    """What a child forked by :mod:`envkit.host.forking` raised that is not an envkit error.

    ``type_name`` is the exception's class name, ``errno`` its errno for an ``OSError``
    (else ``None``), ``child_traceback`` the child's traceback with ``ENVKIT_DEBUG=1``.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        type_name: str = "",
        errno: int | None = None,
        child_traceback: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.type_name = type_name
        self.errno = errno
        self.child_traceback = child_traceback

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.child_traceback}" if self.child_traceback else text


class ChildDied(ChildError):
    """The child exited or was killed without an answer. ``exit_code`` is
    :func:`os.waitstatus_to_exitcode`'s: ``-N`` when signal N killed it."""

    def __init__(self, what: str, exit_code: int) -> None:
        if exit_code < 0:
            import signal  # lazy: only for a killed child's message

            try:
                name = f" ({signal.Signals(-exit_code).name})"
            except ValueError:
                name = ""
            text = f"{what} was killed by signal {-exit_code}{name}"
        else:
            text = f"{what} exited with status {exit_code} without an answer"
        super().__init__(text, type_name="ChildDied")
        self.exit_code = exit_code


class ChildTimeout(ChildError):
    """The child gave no answer within the timeout; it was killed."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"{what} gave no answer within {timeout:g} s", type_name="ChildTimeout")
        self.timeout = timeout


class MonitorError(RuntimeError_):
    """The container monitor could not be reached or refused a request."""


class DependencyError(RuntimeError_):
    """A service that others depend on did not become ready; ``up`` fails with it."""


class NetworkError(EnvkitError):
    """A network could not be created, joined, published or torn down."""


class SupervisorUnreachableError(EnvkitError):
    """No supervisor answers on the stack's control socket (it is gone, or not this
    user's)."""


class BadControlRequestError(EnvkitError):
    """A request to a stack supervisor whose op is unknown or whose fields have the wrong
    type."""


class PgError(EnvkitError):
    """A PostgreSQL server (:mod:`envkit.testing.pgwire`) refused a statement or the
    connection: its SQLSTATE and message."""

    def __init__(self, message: str, *, sqlstate: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate


class HomeError(EnvkitError):
    """Where envkit keeps its data (``ENVKIT_HOME``, or the temporary directory) cannot be
    written: no permission, a read-only file system, or no space left.

    Made from the ``OSError`` by :func:`envkit.settings.storage_error`, which names the
    place and the fix; the CLI turns such an ``OSError`` into this wherever it is raised.
    """


class ComposeWarning(UserWarning):
    """A compose key envkit ignores (it changes nothing), or an unset variable."""
