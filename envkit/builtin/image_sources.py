"""Built-in image sources: ``ref`` (local store) and ``oci-archive`` (Image.load)."""

from __future__ import annotations

from collections.abc import Sequence

from envkit.plugins import hookimpl
from envkit.plugins.interfaces import ImageSource


@hookimpl
def envkit_image_sources() -> Sequence[ImageSource]:
    return []
