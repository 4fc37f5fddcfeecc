"""envkit: Docker's job as a Python library.

Describe images and stacks as typed, immutable Python objects; envkit compiles them into
content-addressed OCI builds and runs them on its own rootless runtime::

    from envkit import Image, Service, Stack

    web = Service("web", image=Image.from_("busybox").cmd(["httpd", "-f"]))
    stack = Stack("demo", services=[web])
"""

from __future__ import annotations

from envkit.errors import EnvkitError, SpecError
from envkit.spec import Healthcheck, Image, Network, Secret, Service, Stack, Volume

__all__ = [
    "EnvkitError",
    "Healthcheck",
    "Image",
    "Network",
    "Secret",
    "Service",
    "SpecError",
    "Stack",
    "Volume",
]
