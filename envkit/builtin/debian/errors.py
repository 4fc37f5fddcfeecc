"""What can go wrong bootstrapping Debian, one :class:`EnvkitError` subclass each."""

from __future__ import annotations

from envkit.errors import BuildError, EnvkitError


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


class BootstrapError(BuildError):
    """Configuring the packages inside the build container failed."""

    exit_code = 2
