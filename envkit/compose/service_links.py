"""A service's links to the rest of the stack: mounts, secrets, health, dependencies and
networks."""

from __future__ import annotations

from typing import Any

from envkit.compose import durations, syntax
from envkit.compose.context import Context, scalar_text
from envkit.compose.yaml_lines import Map, Seq
from envkit.oci.digest import hex_of, sha256_bytes
from envkit.spec.healthcheck import Healthcheck
from envkit.spec.network import DEFAULT_NETWORK, Network
from envkit.spec.secret import Secret
from envkit.spec.volume import Volume

_CONDITIONS = {
    "service_started": "started",
    "service_healthy": "healthy",
    "service_completed_successfully": "completed",
}


def anonymous_volume(service: str, target: str) -> Volume:
    """The volume of compose's ``- /path`` in ``service``: named after the service and a
    digest of the path, so the same file gives the same volume (a recreated container
    finds its data, as compose carries anonymous volumes over)."""
    digest = hex_of(sha256_bytes(f"{service}\0{target}".encode()))
    return Volume(f"{service}-anon-{digest[:12]}", anonymous=True)


class ServiceLinks(Context):
    """Reads what ties a service to volumes, secrets, other services and networks."""

    def mounts(self, service: str, body: Map, where: str, options: dict[str, Any]) -> None:
        if body.get("volumes") is None:
            return
        volumes: dict[Volume | str, str] = {}
        for mount in syntax.volumes(
            self.rep,
            f"{where}.volumes",
            body["volumes"],
            body.line_of("volumes"),
            self.base,
            self.home,
        ):
            suffix = ":ro" if mount.read_only else ""
            if mount.kind == "tmpfs":
                entry = mount.target + (f":{mount.tmpfs_options}" if mount.tmpfs_options else "")
                options.setdefault("tmpfs", []).append(entry)
            elif mount.kind == "bind":
                volumes[mount.source] = mount.target + suffix
            elif not mount.source:
                volumes[anonymous_volume(service, mount.target)] = mount.target + suffix
            else:
                volume = self.volumes.get(mount.source)
                if volume is None:
                    raise self.rep.error(
                        body.line_of("volumes"),
                        f"{where}.volumes",
                        f"refers to undefined volume {mount.source}",
                        f"declare it under the top-level volumes: ({mount.source}: {{}})",
                    )
                if volume in volumes:
                    raise self.rep.error(
                        body.line_of("volumes"),
                        f"{where}.volumes",
                        f"volume {mount.source} is mounted twice",
                        "envkit mounts a volume once per service",
                    )
                volumes[volume] = mount.target + suffix
        options["volumes"] = volumes

    def service_secrets(self, body: Map, where: str) -> list[Secret]:
        value = body.get("secrets")
        if value is None:
            return []
        line = body.line_of("secrets")
        if not isinstance(value, list):
            raise self.rep.error(line, f"{where}.secrets", "expected a list")
        out = []
        for i, item in enumerate(value):
            iwhere, iline = (
                f"{where}.secrets[{i}]",
                value.line_of(i) if isinstance(value, Seq) else line,
            )
            if isinstance(item, Map):
                source = str(item.get("source") or "")
                target = str(item.get("target") or source)
                for key in ("uid", "gid", "mode"):
                    if key in item:
                        self.rep.warn(
                            item.line_of(key),
                            f"{iwhere}.{key}",
                            "ignored: secrets are mounted read-only for the container's user",
                        )
                for key in item:
                    if key not in ("source", "target", "uid", "gid", "mode") and not key.startswith(
                        "x-"
                    ):
                        raise self.rep.error(item.line_of(key), f"{iwhere}.{key}", "not supported")
            else:
                source = target = str(item)
            declared = self.secrets.get(source)
            if declared is None:
                raise self.rep.error(
                    iline,
                    iwhere,
                    f"refers to undefined secret {source}",
                    "declare it under the top-level secrets:",
                )
            if target.startswith("/"):
                if not target.startswith("/run/secrets/") or "/" in target[len("/run/secrets/") :]:
                    raise self.rep.error(
                        iline,
                        f"{iwhere}.target",
                        f"a secret can only be mounted in /run/secrets, not {target}",
                        "give a file name as target",
                    )
                target = target[len("/run/secrets/") :]
            secret = (
                declared
                if target == source
                else self.spec(iline, iwhere, Secret, target, declared.source)
            )
            self.secret_keys[secret.name] = source
            out.append(secret)
        return out

    def healthcheck(self, value: Any, where: str, line: int) -> Healthcheck:
        rep = self.rep
        if not isinstance(value, Map):
            raise rep.error(line, where, "expected a mapping")
        known = {
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        }
        for key in value:
            if key not in known and not key.startswith("x-"):
                raise rep.error(value.line_of(key), f"{where}.{key}", "unknown healthcheck key")
        if value.get("disable") is True:
            return Healthcheck(["NONE"])
        test = value.get("test")
        if test is None:
            raise rep.error(
                line,
                f"{where}.test",
                "envkit needs the test of a healthcheck",
                "copy the image's HEALTHCHECK command here",
            )
        times: dict[str, float] = {}
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if value.get(key) is not None:
                seconds = durations.parse(str(value[key]))
                if seconds is None or seconds < 0:
                    raise rep.error(
                        value.line_of(key),
                        f"{where}.{key}",
                        f"invalid duration {value[key]!r}",
                        'e.g. "30s", "1m30s", "500ms"',
                    )
                times[key] = seconds
        if isinstance(test, str):
            form: list[str] | str = test
        elif isinstance(test, list):
            form = [scalar_text(t) for t in test]
        else:
            raise rep.error(value.line_of("test"), f"{where}.test", "expected a string or a list")
        # 0 is "the default" for the durations, as docker reads them (timeoutWithDefault).
        kwargs: dict[str, Any] = {k: v for k, v in times.items() if v > 0 or k == "start_period"}
        if value.get("retries") is not None:
            kwargs["retries"] = value["retries"]
        return self.spec(value.line_of("test"), where, Healthcheck, form, **kwargs)

    def read_links(self, services: Map, active: list[str]) -> None:
        """compose's legacy ``links: [SERVICE[:ALIAS]]``: each ALIAS becomes a name of
        SERVICE on its networks (:attr:`link_aliases`); :meth:`depends_on` adds the
        dependency a link implies."""
        for name in active:
            body = services[name]
            value = body.get("links")
            if value is None:
                continue
            line = body.line_of("links")
            if not isinstance(value, list):
                raise self.rep.error(line, f"services.{name}.links", "expected a list")
            for i, item in enumerate(value):
                target, _, alias = str(item).partition(":")
                if target not in active:
                    raise self.rep.error(
                        line,
                        f"services.{name}.links[{i}]",
                        f"links to {target!r}, which is not an active service",
                        "fix the name or add the service",
                    )
                if alias and alias != target:
                    self.link_aliases.setdefault(target, set()).add(alias)

    def links(self, body: Map) -> list[str]:
        """The services ``body`` links to."""
        value = body.get("links")
        return [str(item).partition(":")[0] for item in value] if isinstance(value, list) else []

    def depends_on(self, name: str, body: Map, where: str, active: list[str]) -> dict[str, str]:
        linked = dict.fromkeys(self.links(body), "started")  # a link is a dependency, too
        value = body.get("depends_on")
        if value is None:
            return linked
        line = body.line_of("depends_on")
        services = self.mapping(self.doc, "services")
        out: dict[str, str] = {}
        entries: list[tuple[str, str, bool, int]] = []
        if isinstance(value, Seq):
            entries = [(str(t), "started", True, value.line_of(i)) for i, t in enumerate(value)]
        elif isinstance(value, Map):
            for target, spec in value.items():
                spec = spec if isinstance(spec, Map) else Map()
                condition = str(spec.get("condition", "service_started"))
                if condition not in _CONDITIONS:
                    raise self.rep.error(
                        spec.line_of("condition"),
                        f"{where}.depends_on.{target}.condition",
                        f"unknown condition {condition!r}",
                        "use " + ", ".join(_CONDITIONS),
                    )
                if spec.get("restart") is True:
                    self.rep.warn(
                        spec.line_of("restart"),
                        f"{where}.depends_on.{target}.restart",
                        "ignored: envkit does not restart dependents",
                    )
                for key in spec:
                    if key not in ("condition", "required", "restart"):
                        raise self.rep.error(
                            spec.line_of(key), f"{where}.depends_on.{target}.{key}", "unknown key"
                        )
                entries.append(
                    (
                        str(target),
                        _CONDITIONS[condition],
                        spec.get("required", True) is not False,
                        value.line_of(target),
                    )
                )
        else:
            raise self.rep.error(line, f"{where}.depends_on", "expected a list or a mapping")
        for target, condition, required, tline in entries:
            if target not in active:
                if not required:
                    continue
                if target in services:
                    raise self.rep.error(
                        tline,
                        f"{where}.depends_on",
                        f"service {target!r} is needed by {name!r} not in an active profile",
                        f"add a profile of {name!r} to {target!r}, or activate its profile",
                    )
                raise self.rep.error(
                    tline,
                    f"{where}.depends_on",
                    f"depends on undefined service {target!r}",
                    "fix the name or add the service",
                )
            out[target] = condition
        return {**linked, **out}

    def service_network_options(
        self, name: str, body: Map, where: str, options: dict[str, Any]
    ) -> None:
        value = body.get("networks")
        mode = body.get("network_mode")
        if mode == "bridge":  # docker's default bridge: the stack's default network here
            self.rep.warn(
                body.line_of("network_mode"),
                f"{where}.network_mode",
                "bridge: the service joins the stack's default network",
            )
        elif mode is not None:
            if mode not in ("host", "none"):
                raise self.rep.error(
                    body.line_of("network_mode"),
                    f"{where}.network_mode",
                    f"{mode!r} is not supported",
                    "use host, none or bridge (sharing another service's or container's "
                    "network namespace is not supported)",
                )
            options["network_mode"] = mode
            self.service_networks[name] = {}
            return
        joined: dict[str, tuple[str, ...]] = {}
        linked = tuple(sorted(self.link_aliases.get(name, ())))
        if value is None:
            self.service_networks[name] = {DEFAULT_NETWORK: linked}
            if linked:
                options["aliases"] = list(linked)
            return
        if isinstance(value, Seq):
            joined = {str(n): () for n in value}
        elif isinstance(value, Map):
            for net, spec in value.items():
                aliases: tuple[str, ...] = ()
                if isinstance(spec, Map):
                    for key in spec:
                        if key == "aliases":
                            aliases = tuple(str(a) for a in spec[key] or ())
                        elif key in (
                            "ipv4_address",
                            "ipv6_address",
                            "priority",
                            "gw_priority",
                            "mac_address",
                            "link_local_ips",
                            "driver_opts",
                            "interface_name",
                        ):
                            raise self.rep.error(
                                spec.line_of(key),
                                f"{where}.networks.{net}.{key}",
                                "not supported",
                                "envkit assigns addresses itself",
                            )
                        elif not key.startswith("x-"):
                            raise self.rep.error(
                                spec.line_of(key), f"{where}.networks.{net}.{key}", "unknown key"
                            )
                joined[str(net)] = aliases
        else:
            raise self.rep.error(
                body.line_of("networks"), f"{where}.networks", "expected a list or a mapping"
            )
        networks = []
        for net in joined:
            found = self.networks.get(net)
            if found is None:
                if net != DEFAULT_NETWORK:
                    raise self.rep.error(
                        body.line_of("networks"),
                        f"{where}.networks",
                        f"refers to undefined network {net}",
                        f"declare it under the top-level networks: ({net}: {{}})",
                    )
                found = Network(DEFAULT_NETWORK)
            networks.append(found)
        if list(joined) != [DEFAULT_NETWORK]:  # the default alone: as when none is named
            options["networks"] = networks
        # a link's alias is a name on every network of the service (compose scopes it to
        # the linking container; envkit's names are per network)
        joined = {net: tuple(sorted({*names, *linked})) for net, names in joined.items()}
        options["aliases"] = sorted({a for names in joined.values() for a in names})
        self.service_networks[name] = joined
