"""The spec objects: what the user wants, as immutable, validated values (no I/O).

:class:`Image` (a recipe), :class:`Service`, :class:`Volume`, :class:`Network`,
:class:`Secret`, :class:`Healthcheck`, :class:`Ready` (readiness probes) and
:class:`Stack`. Each has ``canonical()``, a
stable JSON-able form, and ``cache_key()``, its sha256. Bad values raise
:class:`envkit.errors.SpecError` naming the field, the value and the fix.
"""

from __future__ import annotations

from envkit.spec.healthcheck import Healthcheck
from envkit.spec.image import Image
from envkit.spec.network import Network
from envkit.spec.readiness import Ready
from envkit.spec.secret import Secret
from envkit.spec.service import Service
from envkit.spec.stack import Stack
from envkit.spec.volume import Volume

__all__ = ["Healthcheck", "Image", "Network", "Ready", "Secret", "Service", "Stack", "Volume"]
