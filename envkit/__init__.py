"""envkit: Docker's job as a Python library.

Describe images and stacks as typed, immutable Python objects; envkit compiles them into
content-addressed OCI builds and runs them on its own rootless runtime::

    from envkit import Image, Service, Stack

    web = Service("web", image=Image.from_("busybox").cmd(["httpd", "-f"]))
    stack = Stack("demo", services=[web])
"""

from __future__ import annotations

from envkit import wiring as _wiring
from envkit.builtin import DEFAULT_PLUGINS as _DEFAULT_PLUGINS
from envkit.builtin.engine import BuiltinEngine as _BuiltinEngine
from envkit.errors import EnvkitError, SpecError

# The composition root: hand the built-in plugins and the spec objects' engine down to
# the layers below (docs/dev/architecture.md). Python runs this module before any
# envkit.* module, so no lower layer ever runs without them.
_wiring.add_default_plugins(*_DEFAULT_PLUGINS)
_wiring.spec_engine = _BuiltinEngine()

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any

    from envkit.container.start import run
    from envkit.spec import Healthcheck, Image, Network, Ready, Secret, Service, Stack, Volume

__all__ = [
    "EnvkitError",
    "Healthcheck",
    "Image",
    "Network",
    "Ready",
    "Secret",
    "Service",
    "SpecError",
    "Stack",
    "Volume",
    "run",
]

_SPEC_NAMES = frozenset(
    {"Healthcheck", "Image", "Network", "Ready", "Secret", "Service", "Stack", "Volume"}
)


def __getattr__(name: str) -> Any:
    # The spec objects load on first use, so `envkit` commands that never touch them
    # (run, exec, ps) do not pay for importing them.
    if name in _SPEC_NAMES:
        from envkit import spec  # lazy for start-up: downward

        value = getattr(spec, name)
        globals()[name] = value
        return value
    if name == "run":
        from envkit.container.start import run  # lazy for start-up: downward

        globals()[name] = run
        return run
    raise AttributeError(f"module 'envkit' has no attribute {name!r}")
