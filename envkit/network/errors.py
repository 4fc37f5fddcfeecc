"""The error the networking engine raises."""

from __future__ import annotations

from envkit.errors import EnvkitError


class NetworkError(EnvkitError):
    """A network could not be created, joined, published or torn down."""
