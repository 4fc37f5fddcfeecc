"""``envkit plugins``: what is loaded, from where, and what each part provides."""

from __future__ import annotations

import argparse

from envkit.plugins.interfaces import Command


class PluginsCommand:
    name = "plugins"
    help = "list loaded plugins and the commands, image sources, secrets and volume backends"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        from envkit.plugins.manager import get_manager

        manager = get_manager()
        print("plugins:")
        for info in manager.infos:
            state = f"  FAILED: {info.error}" if info.error else ""
            print(f"  {info.name:24} {info.origin:24} {info.module}{state}")
        parts: dict[str, list[str]] = {
            "commands": list(manager.commands()),
            "image sources": list(manager.image_sources()),
            "secret providers": list(manager.secret_providers()),
            "volume backends": list(manager.volume_backends()),
        }
        for title, found in parts.items():
            print(f"{title}: {', '.join(sorted(found)) or '(none)'}")
        return 1 if manager.failures else 0


COMMANDS: list[Command] = [PluginsCommand()]
