"""The container of an exported pod: image, command and args, env, ports, probes,
resources, security context, and the init containers that wait for dependencies.

:class:`ContainerParts` is a part of the Kubernetes exporter
(:mod:`envkit.compose.kubernetes`), which provides the stack, the pinned images, the
known ports and ``warn``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from envkit.compose.export_images import ImageFacts
from envkit.compose.kubernetes_names import k8s_name
from envkit.spec.healthcheck import DEFAULT_START_INTERVAL, Healthcheck
from envkit.spec.readiness import Ready
from envkit.spec.service import Service
from envkit.spec.stack import Stack

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store


class ContainerParts:
    """Builds one service's container and init containers."""

    stack: Stack
    images: Mapping[str, ImageFacts]
    ports: dict[str, list[tuple[int, str]]]
    wait_image: str | None
    store: Store | None

    def warn(self, service: str | None, key: str, message: str) -> None:
        raise NotImplementedError

    def _container(self, service: Service, mounts: list[dict[str, Any]]) -> dict[str, Any]:
        facts = self.images[service.name]
        container: dict[str, Any] = {
            "name": k8s_name(service.name),
            "image": facts.ref,
            "imagePullPolicy": "IfNotPresent",
        }
        self._command(service, container)
        if service.workdir:
            container["workingDir"] = service.workdir
        if service.env:
            container["env"] = [{"name": k, "value": v} for k, v in service.env]
        if service.env_file:
            self.warn(
                service.name,
                "env_file",
                f"{', '.join(service.env_file)}: a host file is not read into the manifests "
                "(its values could be secrets): set the variables in env, or a Secret",
            )
        ports = self.ports[service.name]
        if ports:
            container["ports"] = [
                {"containerPort": p, "protocol": proto.upper()} for p, proto in ports
            ]
        if mounts:
            container["volumeMounts"] = mounts
        self._probes(service, container)
        resources: dict[str, str] = {}
        if service.memory is not None:
            resources["memory"] = bytes_quantity(service.memory)
        if service.cpus is not None:
            resources["cpu"] = f"{max(1, round(service.cpus * 1000))}m"
        if resources:
            container["resources"] = {"limits": resources}
        if service.pids_limit is not None:
            self.warn(
                service.name,
                "pids_limit",
                "a pod spec has no per-container pids limit (a kubelet setting)",
            )
        security = self._security(service, facts)
        if security:
            container["securityContext"] = security
        if service.init:
            self.warn(
                service.name,
                "init",
                "Kubernetes runs no init process in a container: build one (tini) into the image",
            )
        if service.ulimits:
            self.warn(
                service.name,
                "ulimits",
                "a pod spec has no per-container resource limits of this kind: the node's "
                "container runtime sets them (containerd's and CRI-O's defaults)",
            )
        if service.stop_signal is not None:
            self.warn(
                service.name,
                "stop_signal",
                f"{service.stop_signal}: a pod spec of Kubernetes 1.30 has no stop signal "
                "(lifecycle.stopSignal is alpha since 1.33): set STOPSIGNAL in the image, "
                "which the container runtime (containerd, CRI-O) uses",
            )
        if service.restart.startswith("on-failure"):
            self.warn(
                service.name,
                "restart",
                f"{service.restart!r}: a Deployment's or StatefulSet's container is restarted "
                "whatever its exit code (restartPolicy: Always)",
            )
        return container

    def _command(self, service: Service, container: dict[str, Any]) -> None:
        """Docker's ENTRYPOINT/CMD as Kubernetes' command/args: ``entrypoint`` replaces
        the image's ENTRYPOINT and clears its CMD (as ``command`` does in a pod);
        ``command`` replaces CMD (``args``)."""
        entrypoint, command = service.entrypoint, service.command
        if entrypoint is None:
            if command is not None:
                container["args"] = list(command)
            return
        if entrypoint:
            container["command"] = list(entrypoint)
            if command is not None:
                container["args"] = list(command)
        elif command:
            container["command"] = list(command)
        else:
            self.warn(
                service.name,
                "entrypoint",
                "cleared with no command: docker refuses to start it, Kubernetes would run "
                "the image's entrypoint; give a command",
            )

    def _security(self, service: Service, facts: ImageFacts) -> dict[str, Any]:
        security: dict[str, Any] = {}
        if service.user:
            ids = facts.user_ids(self.store, service.user)
            if ids is None:
                self.warn(
                    service.name,
                    "user",
                    f"{service.user!r} could not be resolved to numeric ids from the image's "
                    "/etc/passwd (image not in the store, or no such entry): "
                    "runAsUser not set, so the image's user applies; give uid:gid",
                )
            else:
                security["runAsUser"] = ids[0]
                if ids[1] is not None:
                    security["runAsGroup"] = ids[1]
        if service.read_only:
            security["readOnlyRootFilesystem"] = True
        caps: dict[str, list[str]] = {}
        if service.cap_add:
            caps["add"] = [c.removeprefix("CAP_") for c in service.cap_add]
        if service.cap_drop:
            caps["drop"] = [c.removeprefix("CAP_") for c in service.cap_drop]
        if caps:
            security["capabilities"] = caps
        if not service.seccomp:
            security["seccompProfile"] = {"type": "Unconfined"}
        return security

    def _probes(self, service: Service, container: dict[str, Any]) -> None:
        check = service.healthcheck
        readiness: dict[str, Any] | None = None
        if check is not None and not check.disabled:
            readiness = _exec_probe(check)
        ready = list(service.ready)
        if readiness is None and ready:
            first = ready.pop(0)
            readiness = self._ready_probe(service, first)
        for probe in ready:
            self.warn(
                service.name,
                "ready",
                f"a {probe.kind} probe: one readiness probe per container is exported",
            )
        if readiness is not None:
            container["readinessProbe"] = readiness
            if service.restart != "no" and check is not None and not check.disabled:
                container["livenessProbe"] = dict(readiness)
            if check is not None and not check.disabled and _has_start_interval(check):
                # The start interval as a startup probe: it runs every start_interval
                # and holds the other probes back until it passes (so they need no
                # initial delay); it gives up when docker would call the container
                # unhealthy: start_period, then retries failures at interval.
                period = max(1, math.ceil(check.start_interval))
                allowed = check.start_period + check.retries * check.interval
                container["startupProbe"] = {
                    **readiness,
                    "periodSeconds": period,
                    "failureThreshold": max(1, math.ceil(allowed / period)),
                }
                for key in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if key in container:
                        container[key] = {
                            k: v for k, v in container[key].items() if k != "initialDelaySeconds"
                        }

    def _ready_probe(self, service: Service, probe: Ready) -> dict[str, Any] | None:
        timing = {
            "periodSeconds": max(1, math.ceil(probe.interval)),
            "failureThreshold": max(1, math.ceil(probe.timeout / max(probe.interval, 1))),
        }
        if probe.kind == "tcp":
            return {"tcpSocket": {"port": probe.port}, **timing}
        if probe.kind == "http":
            if probe.status is not None and not 200 <= probe.status < 400:
                self.warn(
                    service.name, "ready", f"HTTP status {probe.status}: a probe passes on 200-399"
                )
            return {"httpGet": {"path": probe.path, "port": probe.port}, **timing}
        if probe.kind == "command":
            return {"exec": {"command": list(probe.argv or ())}, **timing}
        self.warn(
            service.name, "ready", "a log-line probe has no Kubernetes counterpart: not exported"
        )
        return None

    def _init_containers(self, service: Service) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for target, condition in service.depends_on:
            if condition != "healthy":
                self.warn(
                    service.name,
                    f"depends_on.{target}",
                    f"condition {condition!r}: Kubernetes starts every pod at once; only "
                    "'healthy' is exported (an init container waiting for the Service)",
                )
                continue
            ports = self.ports[target]
            if not ports or self.wait_image is None:
                why = "no port of it is known" if not ports else "no wait image"
                self.warn(
                    service.name,
                    f"depends_on.{target}",
                    f"'healthy' is not exported ({why}): it starts without waiting",
                )
                continue
            host, port = k8s_name(target), ports[0][0]
            script = (
                f"until nc -w 2 {host} {port} -e true; do "
                f"echo waiting for {host}:{port}; sleep 2; done"
            )
            out.append(
                {
                    "name": k8s_name(f"wait-for-{target}"),
                    "image": self.wait_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                }
            )
        return out


def _has_start_interval(check: Healthcheck) -> bool:
    """Whether ``check`` runs more often while starting: a start period and a start
    interval of its own (docker's default start interval is left to the initial delay)."""
    return check.start_period > 0 and check.start_interval != DEFAULT_START_INTERVAL


def _exec_probe(check: Healthcheck) -> dict[str, Any]:
    argv = list(check.test[1:]) if check.test[0] == "CMD" else ["/bin/sh", "-c", check.test[1]]
    probe: dict[str, Any] = {"exec": {"command": argv}}
    if check.start_period:
        probe["initialDelaySeconds"] = math.ceil(check.start_period)
    probe["periodSeconds"] = max(1, math.ceil(check.interval))
    probe["timeoutSeconds"] = max(1, math.ceil(check.timeout))
    probe["failureThreshold"] = check.retries
    return probe


def bytes_quantity(amount: int) -> str:
    """Bytes as the largest exact binary unit (``536870912`` is ``512Mi``)."""
    for unit, size in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if amount % size == 0:
            return f"{amount // size}{unit}"
    return str(amount)
