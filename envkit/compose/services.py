"""One compose service: its keys mapped onto a :class:`~envkit.spec.Service`."""

from __future__ import annotations

import difflib
import os
import re
import shlex
from pathlib import Path
from typing import Any

from envkit.compose import dotenv, durations, keys, syntax
from envkit.compose.context import scalar_text
from envkit.compose.model import BuildSpec
from envkit.compose.service_links import ServiceLinks
from envkit.compose.yaml_lines import Map, Seq
from envkit.errors import SpecError
from envkit.runtime.config import TmpfsMount
from envkit.spec.hosts import parse as parse_hosts
from envkit.spec.image import Image
from envkit.spec.service import Service
from envkit.spec.sysctls import parse as parse_sysctls
from envkit.spec.ulimits import parse as parse_ulimits

#: Labels on every service of a compose file (compose puts them on its containers).
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class Services(ServiceLinks):
    """Reads a service: image or build, command, environment, ports, limits."""

    def service(self, name: str, body: Map, line: int, active: list[str]) -> Service:
        rep, where = self.rep, f"services.{name}"
        for key in body:
            if key.startswith("x-") or key in keys.SERVICE:
                continue
            kline = body.line_of(key)
            if key in keys.SERVICE_IGNORED:
                rep.warn(kline, f"{where}.{key}", f"ignored: {keys.SERVICE_IGNORED[key]}")
                continue
            if key not in keys.COMPOSE_SERVICE:
                close = difflib.get_close_matches(key, sorted(keys.COMPOSE_SERVICE), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "check the key's spelling"
                raise rep.error(
                    kline, f"{where}.{key}", "unknown key (not in the compose spec)", hint
                )
            raise rep.error(
                kline,
                f"{where}.{key}",
                "not supported by envkit",
                "remove it, or see docs/reference/compose.md",
            )
        options: dict[str, Any] = {}
        options["image"] = self.image(name, body, where)
        for key in ("command", "entrypoint"):
            if body.get(key) is not None:
                options[key] = self.command(body[key], f"{where}.{key}", body.line_of(key))
        options["env"] = self.environment(body, where)
        if body.get("ports") is not None:
            options["ports"] = syntax.ports(
                rep, f"{where}.ports", body["ports"], body.line_of("ports")
            )
        self.mounts(name, body, where, options)
        options["secrets"] = self.service_secrets(body, where)
        if body.get("healthcheck") is not None:
            options["healthcheck"] = self.healthcheck(
                body["healthcheck"], f"{where}.healthcheck", body.line_of("healthcheck")
            )
        options["depends_on"] = self.depends_on(name, body, where, active)
        if body.get("restart") is not None:
            options["restart"] = str(body["restart"])
        self.service_network_options(name, body, where, options)
        for key, target in (("user", "user"), ("working_dir", "workdir"), ("hostname", "hostname")):
            if body.get(key) is not None:
                options[target] = str(body[key])
        for key in ("init", "read_only"):
            if body.get(key) is not None:
                options[key] = body[key]
        if body.get("tmpfs") is not None:
            value = body["tmpfs"]
            options.setdefault("tmpfs", []).extend(
                [value] if isinstance(value, str) else list(value)
            )
        for entry in options.get("tmpfs", []):
            try:  # what the runtime will make of it, checked now to name the line
                TmpfsMount.parse(str(entry))
            except SpecError as exc:
                line = body.line_of("tmpfs" if "tmpfs" in body else "volumes")
                raise rep.error(line, f"{where}.tmpfs", exc.message, exc.hint) from None
        if body.get("shm_size") is not None:
            options["shm_size"] = scalar_text(body["shm_size"])
        if body.get("security_opt") is not None:
            self.security_options(body, where, options)
        if body.get("extra_hosts") is not None:
            hosts = self.spec(
                body.line_of("extra_hosts"),
                f"{where}.extra_hosts",
                parse_hosts,
                "extra_hosts",
                body["extra_hosts"],
            )
            options["extra_hosts"] = [f"{name}:{address}" for name, address in hosts]
        if body.get("sysctls") is not None:
            options["sysctls"] = dict(
                self.spec(
                    body.line_of("sysctls"),
                    f"{where}.sysctls",
                    parse_sysctls,
                    "sysctls",
                    body["sysctls"],
                )
            )
        if body.get("ulimits") is not None:
            found = self.spec(
                body.line_of("ulimits"),
                f"{where}.ulimits",
                parse_ulimits,
                "ulimits",
                body["ulimits"],
            )
            options["ulimits"] = {name: (soft, hard) for name, soft, hard in found}
        for key in ("cap_add", "cap_drop"):
            if body.get(key) is not None:
                options[key] = list(body[key])
        if body.get("stop_signal") is not None:
            options["stop_signal"] = str(body["stop_signal"])
        if body.get("stop_grace_period") is not None:
            value = body["stop_grace_period"]
            seconds = durations.parse(str(value))
            if seconds is None or seconds < 0:
                raise rep.error(
                    body.line_of("stop_grace_period"),
                    f"{where}.stop_grace_period",
                    f"invalid duration {value!r}",
                    'e.g. "30s", "1m30s"',
                )
            options["stop_grace_period"] = seconds
        if body.get("labels") is not None:
            options["labels"] = self.pairs(
                body["labels"], f"{where}.labels", body.line_of("labels")
            )
        self.limits(body, where, options)
        # as compose labels its containers; envkit.stack.environment reads the project one
        options["labels"] = {
            **options.get("labels", {}),
            PROJECT_LABEL: self.project,
            SERVICE_LABEL: name,
        }
        return self.spec(line, where, Service, name, **options)

    def security_options(self, body: Map, where: str, options: dict[str, Any]) -> None:
        """``security_opt`` as docker takes it (``KEY=VALUE`` or ``KEY:VALUE``)."""
        rep, line = self.rep, body.line_of("security_opt")
        value = body["security_opt"]
        if not isinstance(value, list):
            raise rep.error(line, f"{where}.security_opt", "expected a list")
        for i, item in enumerate(value):
            text = str(item)
            key, _, setting = text.replace(":", "=", 1).partition("=")
            iwhere = f"{where}.security_opt[{i}]"
            if key == "no-new-privileges" and setting in ("", "true"):
                continue  # envkit always sets no_new_privs
            if key == "seccomp" and setting == "unconfined":
                options["seccomp"] = False
            elif key == "no-new-privileges" and setting == "false":
                rep.warn(line, iwhere, "ignored: envkit always sets no_new_privs")
            elif key in ("apparmor", "label"):
                rep.warn(line, iwhere, f"ignored: envkit applies no {key} profile")
            else:
                raise rep.error(
                    line,
                    iwhere,
                    f"{text!r} is not supported",
                    "envkit takes seccomp=unconfined and no-new-privileges; it applies "
                    "Docker's default seccomp profile otherwise",
                )

    def image(self, name: str, body: Map, where: str) -> Image:
        """The service's image: ``image:`` by reference, or ``build:`` through envkit's
        Dockerfile import. An ``image:`` that another service builds (``build:`` and
        ``image:`` the same name) is that service's image, as compose tags it so."""
        image = self.built_image(name, body, where)
        if isinstance(body.get("image"), str) and body.get("build") is not None:
            self.built_refs[body["image"]] = image
        return image

    def built_image(self, name: str, body: Map, where: str) -> Image:
        rep = self.rep
        build = body.get("build")
        ref = body.get("image")
        if build is None:
            if not isinstance(ref, str) or not ref:
                raise rep.error(
                    body.line, where, "has neither image nor build", "add image: NAME or build: DIR"
                )
            self.images[name] = ref
            if ref in self.built_refs:
                return self.built_refs[ref]
            return self.spec(body.line_of("image"), f"{where}.image", Image.from_, ref)
        if isinstance(ref, str):
            self.images[name] = ref
        spec = self.build_spec(build, f"{where}.build", body.line_of("build"))
        self.builds[name] = spec
        dockerfile = os.path.join(spec.context, spec.dockerfile)
        # a build arg compose cannot resolve (no value, none in the environment) is left
        # out, so the Dockerfile's own default applies, as compose does
        args = {k: v for k, v in spec.args if v is not None}
        return self.spec(
            body.line_of("build"),
            f"{where}.build",
            Image.from_dockerfile,
            dockerfile,
            spec.context,
            args=args,
            target=spec.target,
        )

    def build_spec(self, value: Any, where: str, line: int) -> BuildSpec:
        rep = self.rep
        if isinstance(value, str):
            value_map = Map()
            value_map["context"] = value
            value_map.line = line
            value = value_map
        if not isinstance(value, Map):
            raise rep.error(line, where, "expected a directory or a mapping with context:")
        for key in value:
            if key in keys.BUILD or key.startswith("x-"):
                continue
            if key in keys.BUILD_IGNORED:
                rep.warn(
                    value.line_of(key), f"{where}.{key}", f"ignored: {keys.BUILD_IGNORED[key]}"
                )
                continue
            raise rep.error(
                value.line_of(key), f"{where}.{key}", "not supported by envkit", "remove it"
            )
        context = str(value.get("context") or ".")
        if re.match(r"^[a-z][a-z0-9+.-]*://|^git@", context):
            raise rep.error(
                value.line_of("context"),
                f"{where}.context",
                "a remote build context is not supported",
                "clone it and give its directory",
            )
        args: list[tuple[str, str | None]] = []
        if value.get("args") is not None:
            raw = value["args"]
            if isinstance(raw, Seq):
                for item in raw:
                    key, sep, val = str(item).partition("=")
                    args.append((key, val if sep else self.env.get(key)))
            elif isinstance(raw, Map):
                for key, val in raw.items():
                    args.append((key, None if val is None else scalar_text(val)))
            else:
                raise rep.error(
                    value.line_of("args"), f"{where}.args", "expected a mapping or a list"
                )
        target = value.get("target")
        return BuildSpec(
            context=syntax.host_path(context, self.base, self.home),
            dockerfile=str(value.get("dockerfile") or "Dockerfile"),
            args=tuple(sorted(args)),
            target=None if target is None else str(target),
        )

    def command(self, value: Any, where: str, line: int) -> list[str]:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise self.rep.error(line, where, f"cannot split into words: {exc}") from None
        if isinstance(value, list):
            return [scalar_text(v) for v in value]
        raise self.rep.error(line, where, "expected a string or a list")

    def pairs(self, value: Any, where: str, line: int, *, resolve: bool = False) -> dict[str, str]:
        """A mapping or a ``KEY=VALUE`` list; ``KEY`` alone (or ``KEY:`` null) takes the
        value from the environment when ``resolve``, else is left out."""
        out: dict[str, str] = {}
        items: list[tuple[str, str | None]] = []
        if isinstance(value, Map):
            items = [(str(k), None if v is None else scalar_text(v)) for k, v in value.items()]
        elif isinstance(value, list):
            for item in value:
                key, sep, text = str(item).partition("=")
                items.append((key, text if sep else None))
        else:
            raise self.rep.error(line, where, "expected a mapping or a list of KEY=VALUE")
        for key, given in items:
            val = self.env.get(key) if given is None and resolve else given
            if val is not None:
                out[key] = val
        return out

    def environment(self, body: Map, where: str) -> dict[str, str]:
        env: dict[str, str] = {}
        if body.get("env_file") is not None:
            for path, required in self.env_files(
                body["env_file"], f"{where}.env_file", body.line_of("env_file")
            ):
                try:
                    text = Path(path).read_text(encoding="utf-8")
                except FileNotFoundError:
                    if required:
                        raise self.rep.error(
                            body.line_of("env_file"),
                            f"{where}.env_file",
                            f"env file {path} not found",
                            "create it, or mark it required: false",
                        ) from None
                    continue
                except OSError as exc:
                    raise self.rep.error(
                        body.line_of("env_file"),
                        f"{where}.env_file",
                        f"cannot read {path}: {exc.strerror}",
                    ) from None
                env.update(dotenv.parse(text, path, self.env))
        if body.get("environment") is not None:
            env.update(
                self.pairs(
                    body["environment"],
                    f"{where}.environment",
                    body.line_of("environment"),
                    resolve=True,
                )
            )
        return env

    def env_files(self, value: Any, where: str, line: int) -> list[tuple[str, bool]]:
        items = [value] if isinstance(value, str | Map) else value
        if not isinstance(items, list):
            raise self.rep.error(line, where, "expected a path or a list of paths")
        out = []
        for item in items:
            if isinstance(item, Map):
                if item.get("format") not in (None, "raw") and item.get("format"):
                    raise self.rep.error(
                        item.line, where, f"env_file format {item['format']!r} is not supported"
                    )
                out.append(
                    (
                        syntax.host_path(str(item.get("path")), self.base, self.home),
                        item.get("required", True) is not False,
                    )
                )
            else:
                out.append((syntax.host_path(str(item), self.base, self.home), True))
        return out

    def limits(self, body: Map, where: str, options: dict[str, Any]) -> None:
        if body.get("mem_limit") is not None:
            options["memory"] = body["mem_limit"]
        if body.get("cpus") is not None:
            options["cpus"] = float(body["cpus"])
        if body.get("pids_limit") is not None and body["pids_limit"] not in (0, -1):
            options["pids_limit"] = body["pids_limit"]
        if body.get("scale") not in (None, 1):
            raise self.rep.error(
                body.line_of("scale"),
                f"{where}.scale",
                "one container per service is supported",
                "remove scale:",
            )
        deploy = body.get("deploy")
        if deploy is None:
            return
        if not isinstance(deploy, Map):
            raise self.rep.error(body.line_of("deploy"), f"{where}.deploy", "expected a mapping")
        for key, value in deploy.items():
            kwhere, kline = f"{where}.deploy.{key}", deploy.line_of(key)
            if key == "replicas" and value == 1:
                continue
            if key != "resources":
                raise self.rep.error(
                    kline, kwhere, "not supported", "envkit reads deploy.resources.limits only"
                )
            for part, limits in (value or {}).items():
                if part == "reservations":
                    self.rep.warn(
                        value.line_of(part),
                        f"{kwhere}.reservations",
                        "ignored: envkit applies limits only",
                    )
                    continue
                if part != "limits":
                    raise self.rep.error(value.line_of(part), f"{kwhere}.{part}", "not supported")
                for lim, amount in (limits or {}).items():
                    if lim == "memory":
                        options["memory"] = amount
                    elif lim == "cpus":
                        options["cpus"] = float(amount)
                    elif lim == "pids":
                        options["pids_limit"] = amount
                    else:
                        raise self.rep.error(
                            limits.line_of(lim), f"{kwhere}.limits.{lim}", "not supported"
                        )
