"""The error the networking engine raises (defined in :mod:`envkit.errors`)."""

from __future__ import annotations

from envkit.errors import NetworkError

__all__ = ["NetworkError"]
