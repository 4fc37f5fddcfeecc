"""Redis: from Debian's ``redis-server`` package or an official ``redis`` image."""

from __future__ import annotations

from envkit.errors import SpecError
from envkit.recipes.checks import server_check
from envkit.recipes.recipe import Recipe
from envkit.spec import Image, Service

PORT = 6379
DEBIAN_VERSIONS = {"bookworm": 7, "trixie": 8}
#: No persistence: a test server keeps its data in memory only.
_EPHEMERAL = ("--save", "", "--appendonly", "no", "--protected-mode", "no", "--bind", "0.0.0.0")


def redis(version: int = 7, *, image: str | None = None, suite: str = "bookworm") -> Recipe:
    """A Redis server for tests, without persistence, as the ``redis`` user.

    Built from Debian ``suite``'s ``redis-server`` package by default;
    ``image="redis:7"`` uses an official registry image. The URL names database 0.
    """
    # SIGTERM stays the stop signal: with --save "" and no AOF redis writes nothing at
    # shutdown, and it exits at once.
    check = server_check(["redis-cli", "-h", "127.0.0.1", "ping"])
    if image is not None:
        # The official entrypoint drops to the redis user itself.
        service = Service(
            "redis",
            image=image,
            command=["redis-server", *_EPHEMERAL],
            ports={0: PORT},
            healthcheck=check,
        )
        return Recipe(service, PORT, "redis", database="0")
    shipped = DEBIAN_VERSIONS.get(suite)
    if shipped != version:
        raise SpecError(
            "redis().version",
            f"Debian {suite} ships Redis {shipped}, not {version}",
            value=version,
            hint=f'use redis(version={shipped}) or redis(image="redis:{version}")',
        )
    service = Service(
        "redis",
        image=Image.debian(suite, packages=["redis-server"]),
        user="redis",
        command=["redis-server", "--port", str(PORT), "--dir", "/tmp", *_EPHEMERAL],
        ports={0: PORT},
        healthcheck=check,
    )
    return Recipe(service, PORT, "redis", database="0")
