"""Every built-in verb and the module whose ``COMMANDS`` holds it.

One table serves both paths: the plugin hook that registers the built-ins
(:mod:`envkit.cli.commands`) and the CLI's fast path, which parses a built-in verb
without loading pluggy or discovering plugins (so a plugin cannot replace a built-in verb).
This module imports nothing: it is on every command's start-up path.
"""

from __future__ import annotations

BUILTIN_VERBS: dict[str, str] = {
    "build": "envkit.cli.build",
    "cache": "envkit.cli.build",
    "config": "envkit.cli.config_cmd",
    "doctor": "envkit.cli.doctor",
    "down": "envkit.cli.stack_cmds",
    "exec": "envkit.cli.containers",
    "export": "envkit.cli.export_cmd",
    "fsck": "envkit.cli.images",
    "images": "envkit.cli.images",
    "inspect": "envkit.cli.images",
    "kill": "envkit.cli.containers",
    "load": "envkit.cli.archive",
    "login": "envkit.cli.registry_cmds",
    "logout": "envkit.cli.registry_cmds",
    "logs": "envkit.cli.containers",
    "ls": "envkit.cli.stack_cmds",
    "network": "envkit.cli.network_cmd",
    "plugins": "envkit.cli.plugins_cmd",
    "port": "envkit.cli.containers",
    "prune": "envkit.cli.images",
    "ps": "envkit.cli.containers",
    "pull": "envkit.cli.registry_cmds",
    "push": "envkit.cli.registry_cmds",
    "restart": "envkit.cli.stack_cmds",
    "rm": "envkit.cli.containers",
    "rmi": "envkit.cli.images",
    "run": "envkit.cli.run",
    "save": "envkit.cli.archive",
    "stack": "envkit.cli.stack_cmds",
    "start": "envkit.cli.stack_cmds",
    "stop": "envkit.cli.containers",
    "system": "envkit.cli.system_cmd",
    "tag": "envkit.cli.images",
    "top": "envkit.cli.stack_cmds",
    "unshare": "envkit.cli.unshare_cmd",
    "up": "envkit.cli.stack_cmds",
    "volume": "envkit.cli.volume_cmd",
}
