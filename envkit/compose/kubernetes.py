"""A Stack as Kubernetes objects of ``apps/v1`` and ``v1`` only.

Each service becomes a Deployment, or a StatefulSet when it mounts named volumes (its
own volumes as ``volumeClaimTemplates``; a volume several services share as one
PersistentVolumeClaim; compose's anonymous volumes are an ``emptyDir``). Every service
with a known port (published, or ``EXPOSE`` in its image) gets a ClusterIP Service of
its own name, so the others reach it by name as on envkit's networks; each alias is one
more Service. Published ports get a Service
``NAME-published`` of the ``--expose`` type (NodePort or LoadBalancer) when asked.
Secrets are referenced by name, never written (see :mod:`envkit.compose.kubernetes_readme`).
What Kubernetes cannot express is an :class:`ExportWarning` naming the service and key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from envkit.compose.export_images import ImageFacts
from envkit.compose.export_model import EXPOSE_TYPES, ExportWarning
from envkit.compose.kubernetes_containers import ContainerParts, bytes_quantity
from envkit.compose.kubernetes_names import NAME_LABEL, PART_OF_LABEL, k8s_name, secret_name
from envkit.records import Record, field
from envkit.spec.network import DEFAULT_NETWORK
from envkit.spec.service import Service
from envkit.spec.stack import Stack
from envkit.spec.volume import Volume

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.store.store import Store

#: Storage a PersistentVolumeClaim asks for when the volume has no ``size`` option.
DEFAULT_STORAGE = "1Gi"

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_SIZE_RE = re.compile(r"^([0-9]+)([kmgt]?)$", re.IGNORECASE)
_SIZE_UNITS = {"": "", "k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti"}


class KubernetesExport(Record):
    """The objects (in apply order), and what could not be expressed."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[ExportWarning] = field(default_factory=list)
    #: published ports: (service, Service name, port, target, protocol)
    published: list[tuple[str, str, int, int, str]] = field(default_factory=list)


def stack_to_kubernetes(
    stack: Stack,
    images: Mapping[str, ImageFacts],
    *,
    namespace: str | None = None,
    expose: str = "clusterip",
    wait_image: str | None = None,
    store: Store | None = None,
) -> KubernetesExport:
    """The Kubernetes objects of ``stack``, whose images ``images`` pins by service.

    ``wait_image`` (by digest) runs the init containers that wait for a dependency's
    Service (``depends_on`` healthy); it needs a shell and ``nc`` (busybox).
    """
    return _Exporter(stack, images, namespace, expose, wait_image, store).run()


class _Exporter(ContainerParts):
    def __init__(
        self,
        stack: Stack,
        images: Mapping[str, ImageFacts],
        namespace: str | None,
        expose: str,
        wait_image: str | None,
        store: Store | None,
    ) -> None:
        self.stack = stack
        self.images = images
        self.namespace = namespace
        self.expose = EXPOSE_TYPES[expose]
        self.wait_image = wait_image
        self.store = store
        self.out = KubernetesExport()
        self.part_of = k8s_name(stack.name)
        users: dict[str, list[str]] = {}
        for service in stack.services:
            for volume in _claimed(service):
                users.setdefault(volume.name, []).append(service.name)
        self.volume_users = users
        self.ports = {s.name: self._ports(s) for s in stack.services}

    def warn(self, service: str | None, key: str, message: str) -> None:
        self.out.warnings.append(ExportWarning(service, key, message))

    def meta(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if self.namespace:
            body["namespace"] = self.namespace
        body["labels"] = dict(labels or {PART_OF_LABEL: self.part_of})
        return body

    def labels(self, service: Service) -> dict[str, str]:
        return {NAME_LABEL: k8s_name(service.name), PART_OF_LABEL: self.part_of}

    # -- the stack ---------------------------------------------------------------------

    def run(self) -> KubernetesExport:
        self._check_networks()
        claims = [self._shared_claim(v) for v in self.stack.volumes if self._shared(v)]
        services: list[dict[str, Any]] = []
        workloads: list[dict[str, Any]] = []
        for service in self.stack.services:
            name = k8s_name(service.name)
            if name != service.name:
                self.warn(
                    service.name,
                    "name",
                    f"named {name!r} in Kubernetes (names are DNS labels): other services "
                    f"reach it as {name}, not {service.name}",
                )
            services.extend(self._services(service))
            workloads.append(self._workload(service))
        self.out.objects = [*claims, *services, *workloads]
        return self.out

    def _check_networks(self) -> None:
        nets = self.stack.networks
        if len(nets) > 1 or any(n.internal or n.subnet for n in nets):
            names = ", ".join(n.name for n in nets)
            self.warn(
                None,
                "networks",
                f"Kubernetes gives every pod one flat network: the separation of {names} "
                "(internal, subnet) is not exported; add NetworkPolicy objects "
                "(networking.k8s.io/v1) if it matters",
            )
        elif nets and nets[0].name != DEFAULT_NETWORK:
            pass  # one plain network: exactly what a namespace gives

    def _host_aliases(self, service: Service) -> list[dict[str, Any]]:
        """``extra_hosts`` as the pod's ``hostAliases`` (one entry per address)."""
        by_ip: dict[str, list[str]] = {}
        for name, address in service.extra_hosts:
            if address == "host-gateway":
                self.warn(
                    service.name,
                    f"extra_hosts.{name}",
                    "host-gateway (the host) has no address in a cluster: not exported",
                )
                continue
            by_ip.setdefault(address, []).append(name)
        return [{"ip": ip, "hostnames": names} for ip, names in by_ip.items()]

    def _shared(self, volume: Volume) -> bool:
        return len(self.volume_users.get(volume.name, [])) > 1

    def _claim_spec(self, volume: Volume, mode: str, service: str | None) -> dict[str, Any]:
        options = dict(volume.options)
        size = options.pop("size", None)
        storage = _quantity(size) if size else DEFAULT_STORAGE
        if size and storage is None:
            self.warn(
                service,
                f"volumes.{volume.name}.size",
                f"{size!r} is not a size; asked for {DEFAULT_STORAGE}",
            )
            storage = DEFAULT_STORAGE
        if volume.backend != "local":
            self.warn(
                service,
                f"volumes.{volume.name}",
                f"backend {volume.backend!r} is envkit's; the claim uses the cluster's "
                "default storage class",
            )
        if options:
            self.warn(
                service,
                f"volumes.{volume.name}.options",
                f"{', '.join(sorted(options))}: volume options are not exported",
            )
        return {"accessModes": [mode], "resources": {"requests": {"storage": storage}}}

    def _shared_claim(self, volume: Volume) -> dict[str, Any]:
        users = self.volume_users[volume.name]
        self.warn(
            None,
            f"volumes.{volume.name}",
            f"shared by {', '.join(users)}: one PersistentVolumeClaim with ReadWriteMany, "
            "which the cluster's storage class must support",
        )
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": self.meta(k8s_name(f"{self.stack.name}-{volume.name}")),
            "spec": self._claim_spec(volume, "ReadWriteMany", None),
        }

    # -- Services ----------------------------------------------------------------------

    def _ports(self, service: Service) -> list[tuple[int, str]]:
        """The container ports a service is known to listen on: published ones, the
        image's EXPOSE, and those its tcp/http readiness probes connect to."""
        found = {(p.container_port, p.protocol) for p in service.ports}
        found.update((r.port, "tcp") for r in service.ready if r.port is not None)
        facts = self.images.get(service.name)
        if facts is not None:
            found.update(facts.exposed_ports)
        return sorted(found)

    def _services(self, service: Service) -> list[dict[str, Any]]:
        name = k8s_name(service.name)
        ports = self.ports[service.name]
        dependants = [s.name for s in self.stack.services if service.name in dict(s.depends_on)]
        out: list[dict[str, Any]] = []
        stateful = bool(_claimed(service))
        if not ports:
            if dependants:
                self.warn(
                    service.name,
                    "ports",
                    f"no port is known (depended on by {', '.join(dependants)}): they "
                    "cannot reach it through a Service; declare the port "
                    "(Image.expose(PORT), EXPOSE, or a published port)",
                )
            if stateful:  # a StatefulSet names its governing Service: a headless one
                out.append(self._service_object(name, service, [], headless=True))
            return out
        out.append(self._service_object(name, service, [(p, p, proto) for p, proto in ports]))
        for alias in service.aliases:
            alias_name = k8s_name(alias)
            if alias_name != alias:
                self.warn(service.name, "aliases", f"alias {alias!r} is the Service {alias_name!r}")
            out.append(
                self._service_object(alias_name, service, [(p, p, proto) for p, proto in ports])
            )
        if service.ports:
            published = [
                (p.host_port or p.container_port, p.container_port, p.protocol)
                for p in sorted(service.ports, key=lambda p: (p.container_port, p.host_port))
            ]
            if self.expose == "ClusterIP":
                for _port, target, proto in published:
                    self.out.published.append((service.name, name, target, target, proto))
            else:
                outside = k8s_name(f"{name}-published")
                out.append(self._service_object(outside, service, published, kind=self.expose))
                for port, target, proto in published:
                    self.out.published.append((service.name, outside, port, target, proto))
        return out

    def _service_object(
        self,
        name: str,
        service: Service,
        ports: list[tuple[int, int, str]],
        *,
        kind: str = "ClusterIP",
        headless: bool = False,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": kind, "selector": self.labels(service)}
        if headless:
            spec["clusterIP"] = "None"
        if ports:
            spec["ports"] = [
                {
                    "name": f"{proto}-{port}",
                    "port": port,
                    "targetPort": target,
                    "protocol": proto.upper(),
                }
                for port, target, proto in ports
            ]
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta(name, self.labels(service)),
            "spec": spec,
        }

    # -- workloads ---------------------------------------------------------------------

    def _workload(self, service: Service) -> dict[str, Any]:
        name = k8s_name(service.name)
        labels = self.labels(service)
        pod: dict[str, Any] = {}
        volumes: list[dict[str, Any]] = []
        mounts: list[dict[str, Any]] = []
        templates: list[dict[str, Any]] = []
        self._mounts(service, volumes, mounts, templates)
        container = self._container(service, mounts)
        init = self._init_containers(service)
        if init:
            pod["initContainers"] = init
        pod["containers"] = [container]
        aliases = self._host_aliases(service)
        if aliases:
            pod["hostAliases"] = aliases
        if service.network_mode == "host":
            pod["hostNetwork"] = True
        elif service.network_mode == "none":
            self.warn(
                service.name, "network_mode", "none: a pod always has a network; not exported"
            )
        if service.sysctls:  # a cluster allows the "safe" ones unless its kubelet says more
            pod["securityContext"] = {
                "sysctls": [{"name": n, "value": v} for n, v in service.sysctls]
            }
        if service.stop_grace_period is not None:
            # whole seconds: the API field is an integer; rounded up, never shorter
            pod["terminationGracePeriodSeconds"] = math.ceil(service.stop_grace_period)
        if volumes:
            pod["volumes"] = volumes
        if service.hostname:
            if _LABEL_RE.match(service.hostname) and len(service.hostname) <= 63:
                pod["hostname"] = service.hostname
            else:
                self.warn(
                    service.name, "hostname", f"{service.hostname!r} is not a DNS label: not set"
                )
        annotations = {k: v for k, v in service.labels if not k.startswith("com.docker.compose.")}
        for key in [k for k in annotations if not _KEY_RE.match(k)]:
            self.warn(service.name, f"labels.{key}", "not a valid annotation key: not exported")
            del annotations[key]
        template: dict[str, Any] = {"metadata": {"labels": labels}, "spec": pod}
        if annotations:
            template["metadata"]["annotations"] = annotations
        spec: dict[str, Any] = {"replicas": 1, "selector": {"matchLabels": labels}}
        if _claimed(service):
            kind = "StatefulSet"
            spec["serviceName"] = name
        else:
            kind = "Deployment"
        spec["template"] = template
        if templates:
            spec["volumeClaimTemplates"] = templates
        return {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": self.meta(name, labels),
            "spec": spec,
        }

    def _mounts(
        self,
        service: Service,
        volumes: list[dict[str, Any]],
        mounts: list[dict[str, Any]],
        templates: list[dict[str, Any]],
    ) -> None:
        for mount in service.volumes:
            if not isinstance(mount.source, Volume):
                self.warn(
                    service.name,
                    f"volumes[{mount.source}]",
                    f"a bind mount of a host path ({mount.source} -> {mount.target}) cannot "
                    "be exported: build the files into the image, or use a named volume",
                )
                continue
            volume = mount.source
            claim = k8s_name(volume.name)
            entry: dict[str, Any] = {"name": claim, "mountPath": mount.target}
            if mount.read_only:
                entry["readOnly"] = True
            mounts.append(entry)
            if volume.anonymous:  # lives as long as the container: the pod's, in Kubernetes
                volumes.append({"name": claim, "emptyDir": {}})
            elif self._shared(volume):
                volumes.append(
                    {
                        "name": claim,
                        "persistentVolumeClaim": {
                            "claimName": k8s_name(f"{self.stack.name}-{volume.name}")
                        },
                    }
                )
            else:
                templates.append(
                    {
                        "metadata": {"name": claim, "labels": self.labels(service)},
                        "spec": self._claim_spec(volume, "ReadWriteOnce", service.name),
                    }
                )
        for index, entry_text in enumerate(service.tmpfs):
            path, _, options = entry_text.partition(":")
            empty: dict[str, Any] = {"medium": "Memory"}
            for option in filter(None, options.split(",")):
                key, _, value = option.partition("=")
                size = _quantity(value) if key == "size" else None
                if size is not None:
                    empty["sizeLimit"] = size
                else:
                    self.warn(service.name, f"tmpfs[{path}]", f"option {option!r} is not exported")
            volumes.append({"name": f"tmpfs-{index}", "emptyDir": empty})
            mounts.append({"name": f"tmpfs-{index}", "mountPath": path})
        if service.shm_size is not None:  # Kubernetes' /dev/shm is the runtime's 64Mi
            shm = {"medium": "Memory", "sizeLimit": bytes_quantity(service.shm_size)}
            volumes.append({"name": "dshm", "emptyDir": shm})
            mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        for secret in service.secrets:
            volume_name = k8s_name(f"secret-{secret.name}")
            volumes.append(
                {
                    "name": volume_name,
                    "secret": {
                        "secretName": secret_name(self.stack, secret),
                        "items": [{"key": secret.name, "path": secret.name}],
                    },
                }
            )
            mounts.append(
                {
                    "name": volume_name,
                    "mountPath": f"/run/secrets/{secret.name}",
                    "subPath": secret.name,
                    "readOnly": True,
                }
            )
            if secret.scheme == "file":
                self.warn(
                    service.name,
                    f"secrets.{secret.name}",
                    f"a secret from a host file ({secret.location}) is not in the cluster: "
                    f"create the Secret {secret_name(self.stack, secret)} with the README's "
                    "command before applying",
                )
            elif secret.scheme != "env":
                self.warn(
                    service.name,
                    f"secrets.{secret.name}",
                    f"the secret provider {secret.scheme!r} has no Kubernetes counterpart: "
                    f"create the Secret {secret_name(self.stack, secret)} yourself (README)",
                )


def _quantity(text: str) -> str | None:
    """A docker size (``64m``, ``1g``, bytes) as a Kubernetes quantity (``64Mi``)."""
    match = _SIZE_RE.match(text.strip())
    if match is None:
        return None
    return match.group(1) + _SIZE_UNITS[match.group(2).lower()]


__all__ = [
    "DEFAULT_STORAGE",
    "NAME_LABEL",
    "PART_OF_LABEL",
    "KubernetesExport",
    "k8s_name",
    "secret_name",
    "stack_to_kubernetes",
]


def _claimed(service: Service) -> tuple[Volume, ...]:
    """The service's volumes that become claims: all but anonymous ones (an emptyDir)."""
    return tuple(v for v in service.volume_objects if not v.anonymous)
