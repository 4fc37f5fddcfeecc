"""The built-in CLI commands."""

from __future__ import annotations

from collections.abc import Sequence

from envkit.plugins import hookimpl
from envkit.plugins.interfaces import Command


@hookimpl
def envkit_commands() -> Sequence[Command]:
    from envkit.cli import (
        archive,
        build,
        config_cmd,
        containers,
        doctor,
        images,
        network_cmd,
        plugins_cmd,
        registry_cmds,
        run,
        stack_cmds,
        volume_cmd,
    )

    return [
        *config_cmd.COMMANDS,
        *images.COMMANDS,
        *archive.COMMANDS,
        *plugins_cmd.COMMANDS,
        *doctor.COMMANDS,
        *registry_cmds.COMMANDS,
        *run.COMMANDS,
        *containers.COMMANDS,
        *network_cmd.COMMANDS,
        *build.COMMANDS,
        *stack_cmds.COMMANDS,
        *volume_cmd.COMMANDS,
    ]
