"""A Stack in compose's normalised form, the shape ``docker compose config`` prints.

This is the other direction of the mapping in :mod:`envkit.compose.loader`: every field
of :class:`~envkit.spec.Service` that compose can express is written the way compose
writes it (long syntax for ports, volumes and secrets, lists for commands, Go
durations, names scoped by the project). ``envkit config compose.yaml`` prints it, so
a user sees what envkit understood; exporting a stack to compose starts from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envkit.compose import durations
from envkit.compose.model import BuildSpec, ComposeProject
from envkit.compose.service_links import anonymous_volume
from envkit.spec.bases import Dockerfile, FromRef
from envkit.spec.healthcheck import DEFAULT_START_INTERVAL
from envkit.spec.mounts import Mount
from envkit.spec.service import Service
from envkit.spec.stack import Stack
from envkit.spec.volume import Volume

_CONDITIONS = {
    "started": "service_started",
    "healthy": "service_healthy",
    "completed": "service_completed_successfully",
}


def project_to_compose(project: ComposeProject) -> dict[str, Any]:
    """The normalised compose form of a loaded compose file."""
    return stack_to_compose(
        project.stack,
        images=project.images,
        builds=project.builds,
        secret_keys=project.secret_keys,
        service_networks=project.service_networks,
    )


def stack_to_compose(
    stack: Stack,
    *,
    images: Mapping[str, str] | None = None,
    builds: Mapping[str, BuildSpec] | None = None,
    secret_keys: Mapping[str, str] | None = None,
    service_networks: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
) -> dict[str, Any]:
    """``stack`` as compose's normalised mapping (``name``, ``services``, ``networks``,
    ``volumes``, ``secrets``; every ``$`` written ``$$``). The optional mappings carry
    what a compose file said that the Stack keeps in another form (image names as
    written, build args, secret keys)."""
    images, builds = images or {}, builds or {}
    keys_of = dict(secret_keys or {})
    services = {}
    for service in stack.services:
        nets = (service_networks or {}).get(service.name)
        if nets is None:
            nets = {n.name: service.aliases for n in stack.service_networks(service.name)}
        services[service.name] = _service(
            stack, service, images.get(service.name), builds.get(service.name), keys_of, nets
        )
    out: dict[str, Any] = {"name": stack.name, "services": services}
    if stack.networks:
        out["networks"] = {
            n.name: _network(stack.name, n.name, n.internal, n.subnet, n.ipv6)
            for n in stack.networks
        }
    # compose's anonymous volumes (`- /path`) have no name and no top-level entry
    unnamed = {
        m.source
        for s in stack.services
        for m in s.volumes
        if isinstance(m.source, Volume) and _unnamed(s.name, m.source, m.target)
    }
    if stack.volumes:
        out["volumes"] = {
            v.name: {
                "name": f"{stack.name}_{v.name}",
                **({"driver_opts": dict(v.options)} if v.options else {}),
            }
            for v in stack.volumes
            if v not in unnamed
        }
        if not out["volumes"]:
            del out["volumes"]
    secrets: dict[str, Any] = {}
    for secret in stack.secrets:
        key = keys_of.get(secret.name, secret.name)
        body: dict[str, Any] = {"name": f"{stack.name}_{key}"}
        if secret.scheme == "file":
            body["file"] = secret.location
        elif secret.scheme == "env":
            body["environment"] = secret.location
        else:
            body["x-envkit-source"] = secret.source
        secrets[key] = body
    if secrets:
        out["secrets"] = dict(sorted(secrets.items()))
    escaped: dict[str, Any] = _escaped(out)
    return escaped


def _escaped(value: Any) -> Any:
    """Every ``$`` in a string value written ``$$``, as compose writes its normalised form,
    so that reading it again interpolates nothing."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def _network(
    project: str, name: str, internal: bool, subnet: str | None, ipv6: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"{project}_{name}"}
    if ipv6:
        body["enable_ipv6"] = True
    if subnet:
        body["ipam"] = {"config": [{"subnet": subnet}]}
    if internal:
        body["internal"] = True
    return body


def _service(
    stack: Stack,
    service: Service,
    image: str | None,
    build: BuildSpec | None,
    secret_keys: Mapping[str, str],
    networks: Mapping[str, tuple[str, ...]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = service.image.base
    if build is None and image is None and isinstance(base, Dockerfile) and not service.image.steps:
        build = BuildSpec(base.context, base.path, base.args, base.target)
    if build is not None:
        body: dict[str, Any] = {"context": build.context, "dockerfile": build.dockerfile}
        if build.args:
            body["args"] = dict(build.args)
        if build.target:
            body["target"] = build.target
        out["build"] = body
    if service.cap_add:
        out["cap_add"] = [c.removeprefix("CAP_") for c in service.cap_add]
    if service.cap_drop:
        out["cap_drop"] = [c.removeprefix("CAP_") for c in service.cap_drop]
    if service.command is not None:
        out["command"] = list(service.command)
    if service.cpus is not None:
        out["cpus"] = service.cpus
    if service.depends_on:
        out["depends_on"] = {
            t: {"condition": _CONDITIONS[c], "required": True} for t, c in service.depends_on
        }
    if service.entrypoint is not None:
        out["entrypoint"] = list(service.entrypoint)
    if service.env:
        out["environment"] = dict(service.env)
    if service.extra_hosts:
        out["extra_hosts"] = [f"{name}={address}" for name, address in service.extra_hosts]
    if service.healthcheck is not None:
        out["healthcheck"] = _healthcheck(service)
    if service.hostname:
        out["hostname"] = service.hostname
    if image is None and build is None:
        image = base.ref if isinstance(base, FromRef) else None
        if image is None:
            out["x-envkit-image"] = service.image.canonical()
    if image is not None:
        out["image"] = image
    if service.init:
        out["init"] = True
    labels = {k: v for k, v in service.labels if not k.startswith("com.docker.compose.")}
    if labels:
        out["labels"] = labels
    if service.memory is not None:
        out["mem_limit"] = str(service.memory)
    if service.network_mode is not None:
        out["network_mode"] = service.network_mode
    else:
        out["networks"] = {
            net: ({"aliases": list(aliases)} if aliases else None)
            for net, aliases in networks.items()
        }
    if service.pids_limit is not None:
        out["pids_limit"] = service.pids_limit
    if service.ports:
        out["ports"] = [
            {
                "mode": "ingress",
                "host_ip": p.host_ip,
                "target": p.container_port,
                **({"published": str(p.host_port)} if p.host_port else {}),
                "protocol": p.protocol,
            }
            for p in service.ports
        ]
    if service.read_only:
        out["read_only"] = True
    if service.restart != "no":
        out["restart"] = service.restart
    if service.secrets:
        out["secrets"] = [
            {"source": secret_keys.get(s.name, s.name), "target": f"/run/secrets/{s.name}"}
            for s in service.secrets
        ]
    if not service.seccomp:
        out["security_opt"] = ["seccomp=unconfined"]
    if service.ulimits:
        out["ulimits"] = {
            name: soft if soft == hard else {"soft": soft, "hard": hard}
            for name, soft, hard in service.ulimits
        }
    if service.shm_size is not None:
        out["shm_size"] = str(service.shm_size)  # bytes, as compose writes it
    if service.stop_grace_period is not None:
        out["stop_grace_period"] = durations.format_seconds(service.stop_grace_period)
    if service.stop_signal:
        out["stop_signal"] = service.stop_signal
    if service.sysctls:
        out["sysctls"] = dict(service.sysctls)
    if service.tmpfs:
        out["tmpfs"] = list(service.tmpfs)
    if service.user:
        out["user"] = service.user
    if service.volumes:
        out["volumes"] = [_mount(service.name, m) for m in service.volumes]
    if service.workdir:
        out["working_dir"] = service.workdir
    return out


def _healthcheck(service: Service) -> dict[str, Any]:
    check = service.healthcheck
    assert check is not None
    if check.disabled:
        return {"disable": True}
    return {
        "test": list(check.test),
        "interval": durations.format_seconds(check.interval),
        "timeout": durations.format_seconds(check.timeout),
        "retries": check.retries,
        "start_period": durations.format_seconds(check.start_period),
        **(
            {"start_interval": durations.format_seconds(check.start_interval)}
            if check.start_interval != DEFAULT_START_INTERVAL
            else {}
        ),
    }


def _unnamed(service: str, volume: Volume, target: str) -> bool:
    """Whether compose writes ``volume`` as an anonymous one (``- TARGET``): it is the
    volume the loader makes of that (another anonymous volume keeps its name)."""
    return volume.anonymous and volume == anonymous_volume(service, target)


def _mount(service: str, spec: Mount) -> dict[str, Any]:
    mount = spec.canonical()
    out: dict[str, Any] = {"type": mount["type"]}
    if not (isinstance(spec.source, Volume) and _unnamed(service, spec.source, spec.target)):
        out["source"] = mount["source"]
    out["target"] = mount["target"]
    if mount["read_only"]:
        out["read_only"] = True
    out["volume" if mount["type"] == "volume" else "bind"] = (
        {} if mount["type"] == "volume" else {"create_host_path": True}
    )
    return out
