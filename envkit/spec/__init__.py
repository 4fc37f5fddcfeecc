"""The spec objects: what the user wants, as immutable, validated values (no I/O).

:class:`Image` (a recipe), :class:`Service`, :class:`Volume`, :class:`Network`,
:class:`Secret`, :class:`Healthcheck`, :class:`Ready` (readiness probes) and
:class:`Stack`. Each has ``canonical()``, a
stable JSON-able form, and ``cache_key()``, its sha256. Bad values raise
:class:`envkit.errors.SpecError` naming the field, the value and the fix.

Each name loads its module on first use (:pep:`562`): ``envkit build app.py:web`` needs
the Image and what it is made of, not the service, stack, network and readiness modules
(~2.5 ms of imports a build would otherwise pay for).
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.spec.healthcheck import Healthcheck
    from envkit.spec.image import Image
    from envkit.spec.network import Network
    from envkit.spec.readiness import Ready
    from envkit.spec.secret import Secret
    from envkit.spec.service import Service
    from envkit.spec.stack import Stack
    from envkit.spec.volume import Volume

__all__ = ["Healthcheck", "Image", "Network", "Ready", "Secret", "Service", "Stack", "Volume"]

#: The module that defines each public name.
_HOMES = {
    "Healthcheck": "envkit.spec.healthcheck",
    "Image": "envkit.spec.image",
    "Network": "envkit.spec.network",
    "Ready": "envkit.spec.readiness",
    "Secret": "envkit.spec.secret",
    "Service": "envkit.spec.service",
    "Stack": "envkit.spec.stack",
    "Volume": "envkit.spec.volume",
}


if not TYPE_CHECKING:  # type checkers see the names imported above, and no other
    from envkit.lazy_names import attributes

    __getattr__, __dir__ = attributes(__name__, _HOMES, globals(), __all__)
