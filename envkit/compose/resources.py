"""The top-level ``volumes``, ``networks`` and ``secrets`` of a compose file."""

from __future__ import annotations

from typing import Any

from envkit.compose import syntax
from envkit.compose.context import Context
from envkit.compose.yaml_lines import Map
from envkit.spec.network import Network
from envkit.spec.secret import Secret
from envkit.spec.volume import Volume


class Resources(Context):
    """Reads the top-level sections into Volume, Network and Secret objects."""

    def top_volumes(self, project: str) -> None:
        section = self.mapping(self.doc, "volumes")
        for vol_name, body in section.items():
            where, line = f"volumes.{vol_name}", section.line_of(vol_name)
            body = body if isinstance(body, Map) else Map()
            driver, options = "local", {}
            for key, value in body.items():
                kline = body.line_of(key)
                if key == "driver":
                    driver = str(value)
                    if driver != "local":
                        raise self.rep.error(
                            kline,
                            f"{where}.driver",
                            f"volume driver {driver!r} is not supported",
                            "use the local driver (or an envkit volume backend in a stack.py)",
                        )
                elif key == "driver_opts":
                    options = {str(k): str(v) for k, v in (value or {}).items()}
                elif key == "name":
                    if value != f"{project}_{vol_name}":
                        raise self.rep.error(
                            kline,
                            f"{where}.name",
                            "a volume name of your own is not supported",
                            f"envkit names it {project}_{vol_name}; remove name:",
                        )
                elif key == "external":
                    if value:
                        raise self.rep.error(
                            kline,
                            f"{where}.external",
                            "external volumes are not supported",
                            "let envkit create the volume: remove external:",
                        )
                elif key == "labels":
                    self.rep.warn(kline, f"{where}.labels", "volume labels are not kept; ignored")
                elif not key.startswith("x-"):
                    raise self.rep.error(
                        kline, f"{where}.{key}", "unknown or unsupported volume key"
                    )
            self.volumes[vol_name] = self.spec(line, where, Volume, vol_name, options=options)

    def top_networks(self, project: str) -> None:
        section = self.mapping(self.doc, "networks")
        for net_name, body in section.items():
            where, line = f"networks.{net_name}", section.line_of(net_name)
            body = body if isinstance(body, Map) else Map()
            internal, subnet, ipv6 = False, None, False
            for key, value in body.items():
                kline = body.line_of(key)
                if key == "driver":
                    if value != "bridge":
                        raise self.rep.error(
                            kline,
                            f"{where}.driver",
                            f"network driver {value!r} is not supported",
                            "use bridge (the default)",
                        )
                elif key == "internal":
                    internal = value is True
                elif key == "enable_ipv6":
                    ipv6 = value is True
                elif key == "ipam":
                    subnet = self.subnet(where, value, kline)
                elif key == "name":
                    if value != f"{project}_{net_name}":
                        raise self.rep.error(
                            kline,
                            f"{where}.name",
                            "a network name of your own is not supported",
                            "remove name:",
                        )
                elif key == "external":
                    if value:
                        raise self.rep.error(
                            kline,
                            f"{where}.external",
                            "external networks are not supported",
                            "remove external:",
                        )
                elif key in ("labels", "attachable", "driver_opts"):
                    self.rep.warn(kline, f"{where}.{key}", "not used by envkit; ignored")
                elif not key.startswith("x-"):
                    raise self.rep.error(
                        kline, f"{where}.{key}", "unknown or unsupported network key"
                    )
            self.networks[net_name] = self.spec(
                line, where, Network, net_name, internal=internal, subnet=subnet, ipv6=ipv6
            )

    def subnet(self, where: str, ipam: Any, line: int) -> str | None:
        if not isinstance(ipam, Map):
            raise self.rep.error(line, f"{where}.ipam", "expected a mapping")
        for key in ipam:
            if key not in ("driver", "config") and not key.startswith("x-"):
                raise self.rep.error(ipam.line_of(key), f"{where}.ipam.{key}", "not supported")
        if ipam.get("driver", "default") != "default":
            raise self.rep.error(
                ipam.line_of("driver"),
                f"{where}.ipam.driver",
                "only the default IPAM driver is supported",
            )
        config = ipam.get("config") or []
        subnets = [c.get("subnet") for c in config if isinstance(c, Map)]
        for entry in config:
            extra = set(entry) - {"subnet"} if isinstance(entry, Map) else set()
            if extra:
                raise self.rep.error(
                    entry.line,
                    f"{where}.ipam.config",
                    f"{sorted(extra)[0]} is not supported",
                    "give the subnet only",
                )
        if len(subnets) > 1:
            raise self.rep.error(
                line, f"{where}.ipam.config", "one subnet per network is supported"
            )
        return str(subnets[0]) if subnets and subnets[0] else None

    def top_secrets(self, project: str) -> None:
        section = self.mapping(self.doc, "secrets")
        for key_name, body in section.items():
            where, line = f"secrets.{key_name}", section.line_of(key_name)
            if not isinstance(body, Map):
                raise self.rep.error(line, where, "expected a mapping with file: or environment:")
            for key in body:
                if key == "external" and body[key]:
                    raise self.rep.error(
                        body.line_of(key),
                        f"{where}.external",
                        "external secrets are not supported",
                        "use file: or environment:",
                    )
                if key == "name" and body[key] != f"{project}_{key_name}":
                    self.rep.warn(
                        body.line_of(key),
                        f"{where}.name",
                        "ignored: the secret is mounted at /run/secrets/<its key>",
                    )
                elif key not in ("file", "environment", "external", "name") and not key.startswith(
                    "x-"
                ):
                    raise self.rep.error(
                        body.line_of(key),
                        f"{where}.{key}",
                        "not supported",
                        "use file: or environment:",
                    )
            if "file" in body:
                source = "file:" + syntax.host_path(str(body["file"]), self.base, self.home)
            elif "environment" in body:
                source = f"env:{body['environment']}"
                if body["environment"] in self.dotenv_only:
                    self.rep.warn(
                        body.line_of("environment"),
                        f"{where}.environment",
                        f"{body['environment']} is set in .env only: envkit reads the secret "
                        "from its own environment when a container starts; export it",
                    )
            else:
                raise self.rep.error(line, where, "a secret needs file: or environment:")
            self.secrets[key_name] = self.spec(line, where, Secret, key_name, source)
