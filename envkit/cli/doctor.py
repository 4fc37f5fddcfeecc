"""``envkit doctor``: what the runtime needs from this host, and the fix for each gap."""

from __future__ import annotations

import argparse
import json

from envkit.plugins.interfaces import Command
from envkit.records import asdict


class DoctorCommand:
    name = "doctor"
    help = "check the kernel and host for what the rootless runtime needs"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--strict", action="store_true", help="exit 1 on optional gaps too (limits, egress)"
        )
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def run(self, args: argparse.Namespace) -> int:
        from envkit.runtime.probes import run_all

        checks = run_all()
        if args.format == "json":
            print(json.dumps([asdict(c) for c in checks], indent=2))
        else:
            for check in checks:
                if check.ok:
                    mark = "ok     "
                elif check.required:
                    mark = "MISSING"
                else:
                    mark = "limited"
                print(f"{mark} {check.name}: {check.detail}")
                if not check.ok and check.fix:
                    print(f"        fix: {check.fix}")
        failed = [c for c in checks if not c.ok and (c.required or args.strict)]
        return 1 if failed else 0


COMMANDS: list[Command] = [DoctorCommand()]
