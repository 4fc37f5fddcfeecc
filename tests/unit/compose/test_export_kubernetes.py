"""``envkit export --format kubernetes``: the objects of a stack (apps/v1 and v1 only),
validated against the Kubernetes schemas that ``kubernetes-validate`` ships (offline),
and every mapping rule of docs/reference/export.md on tests/data/export/shop/stack.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from envkit.compose import load
from envkit.compose.export import export
from envkit.compose.export_images import ImageFacts
from envkit.compose.kubernetes import k8s_name, stack_to_kubernetes
from envkit.errors import EnvkitError
from envkit.spec import Healthcheck, Image, Service, Stack, Volume
from envkit.spec.loader import load_stack
from envkit.spec.readiness import Ready

ROOT = Path(__file__).resolve().parents[3]
SHOP = ROOT / "tests" / "data" / "export" / "shop"
#: The Kubernetes version the manifests are validated against (kubernetes-validate's
#: schemas are per version; 1.30 is the oldest release still widely run).
K8S_VERSION = "1.30.0"
WAIT = "docker.io/library/busybox@sha256:" + "b" * 64
DIGEST = "sha256:" + "c" * 64


@pytest.fixture(autouse=True)
def _home(envkit_home: Path) -> None:
    """Every test has an empty store: images come pinned by digest."""


def _shop() -> Stack:
    return load_stack(SHOP / "stack.py")


def _facts(stack: Stack) -> dict[str, ImageFacts]:
    """Made-up digests for every service (what pin_images gives after a push)."""
    return {
        s.name: ImageFacts(f"registry.example.org/t/{s.name.lower()}@{DIGEST}")
        for s in stack.services
    }


def _objects(stack: Stack, **kw: Any) -> tuple[dict[tuple[str, str], dict[str, Any]], list[str]]:
    out = stack_to_kubernetes(stack, _facts(stack), wait_image=WAIT, **kw)
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in out.objects}
    assert len(by_key) == len(out.objects), "two objects share a kind and name"
    return by_key, [str(w) for w in out.warnings]


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def _validate(objects: list[dict[str, Any]]) -> None:
    kv = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (pip install -e .[dev])"
    )
    for obj in objects:
        kv.validate(obj, K8S_VERSION, strict=True)


# -- every example validates -----------------------------------------------------------

EXAMPLES = [
    SHOP / "stack.py",
    *sorted(p for p in (ROOT / "examples").glob("*/stack.py")),
    ROOT / "examples" / "compose" / "compose.yaml",
    ROOT / "examples" / "compose" / "busybox" / "compose.yaml",
]


def _example_stack(path: Path, tmp_path: Path) -> Stack:
    if path.suffix == ".yaml":
        return load(path, environ={"HOME": str(tmp_path)}).stack
    return load_stack(path)


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(ROOT)) for p in EXAMPLES])
@pytest.mark.parametrize("expose", ["clusterip", "nodeport", "loadbalancer"])
def test_every_example_validates_against_the_kubernetes_schemas(
    path: Path, expose: str, tmp_path: Path
) -> None:
    stack = _example_stack(path, tmp_path)
    out = stack_to_kubernetes(
        stack, _facts(stack), wait_image=WAIT, expose=expose, namespace="staging"
    )
    assert out.objects
    assert {(o["apiVersion"], o["kind"]) for o in out.objects} <= {
        ("v1", "Service"),
        ("v1", "PersistentVolumeClaim"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
    }
    assert all(o["metadata"]["namespace"] == "staging" for o in out.objects)
    _validate(out.objects)


def test_the_validator_refuses_a_broken_manifest() -> None:
    """The check above would catch a mistake: a wrong type and an unknown field fail."""
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate not installed")
    objects, _ = _objects(_shop())
    broken = objects[("Deployment", "cache")]
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSION, strict=True)
    objects, _ = _objects(_shop())
    unknown = objects[("Service", "web")]
    unknown["spec"]["publishedPorts"] = [8000]
    with pytest.raises(kv.ValidationError):
        kv.validate(unknown, K8S_VERSION, strict=True)


# -- workloads, Services, volumes --------------------------------------------------------


def test_stateless_services_are_deployments_and_volume_owners_statefulsets() -> None:
    objects, warnings = _objects(_shop())
    kinds = {name: kind for kind, name in objects if kind in ("Deployment", "StatefulSet")}
    assert kinds == {
        "cache": "Deployment",
        "db": "StatefulSet",
        "web": "StatefulSet",  # it mounts the shared volume "uploads"
        "worker-1": "StatefulSet",
    }
    db = objects[("StatefulSet", "db")]
    assert db["spec"]["serviceName"] == "db"
    (template,) = db["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "db-data"
    assert template["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    assert _container(db)["volumeMounts"][0] == {
        "name": "db-data",
        "mountPath": "/var/lib/postgresql/data",
    }
    # a volume two services share: one claim, ReadWriteMany, named in a warning
    claim = objects[("PersistentVolumeClaim", "shop-uploads")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    web_volumes = objects[("StatefulSet", "web")]["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "uploads",
        "persistentVolumeClaim": {"claimName": "shop-uploads"},
    } in web_volumes
    assert any("volumes.uploads: shared by web, worker_1" in w for w in warnings)


def test_labels_and_selectors() -> None:
    objects, _ = _objects(_shop())
    for (kind, name), obj in objects.items():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "shop"
        if kind in ("Deployment", "StatefulSet"):
            assert labels["app.kubernetes.io/name"] == name
            assert obj["spec"]["selector"]["matchLabels"] == labels
            assert obj["spec"]["template"]["metadata"]["labels"] == labels
        if kind == "Service":
            assert obj["spec"]["selector"]["app.kubernetes.io/part-of"] == "shop"
    web = objects[("StatefulSet", "web")]["spec"]["template"]["metadata"]
    assert web["annotations"] == {"com.example.team": "shop"}


def test_a_service_per_reachable_service_and_per_alias() -> None:
    objects, warnings = _objects(_shop())
    services = {name for kind, name in objects if kind == "Service"}
    # worker_1 has no port: nothing reaches it, and no warning since no service depends
    # on it; as a StatefulSet it still has its governing Service, a headless one
    assert services == {"db", "database", "cache", "web", "worker-1"}
    assert objects[("Service", "worker-1")]["spec"] == {
        "type": "ClusterIP",
        "selector": {"app.kubernetes.io/name": "worker-1", "app.kubernetes.io/part-of": "shop"},
        "clusterIP": "None",
    }
    for name in ("db", "database"):
        spec = objects[("Service", name)]["spec"]
        assert spec["type"] == "ClusterIP"
        assert spec["ports"] == [
            {"name": "tcp-5432", "port": 5432, "targetPort": 5432, "protocol": "TCP"}
        ]
        assert spec["selector"]["app.kubernetes.io/name"] == "db"
    web = objects[("Service", "web")]["spec"]["ports"]
    assert {(p["port"], p["protocol"]) for p in web} == {(5000, "TCP"), (53, "UDP")}
    assert not any("worker" in w and "ports" in w for w in warnings)


def test_image_exposed_ports_are_service_ports() -> None:
    svc = Service("api", image=f"api@{DIGEST}")
    stack = Stack("s", services=[svc])
    facts = {
        "api": ImageFacts(f"docker.io/library/api@{DIGEST}", {"ExposedPorts": {"8080/tcp": {}}})
    }
    out = stack_to_kubernetes(stack, facts)
    (service,) = [o for o in out.objects if o["kind"] == "Service"]
    assert service["spec"]["ports"][0]["port"] == 8080


@pytest.mark.parametrize(
    ("expose", "kind"), [("nodeport", "NodePort"), ("loadbalancer", "LoadBalancer")]
)
def test_published_ports_get_a_service_of_the_expose_type(expose: str, kind: str) -> None:
    objects, _ = _objects(_shop(), expose=expose)
    published = objects[("Service", "web-published")]["spec"]
    assert published["type"] == kind
    assert sorted((p["port"], p["targetPort"], p["protocol"]) for p in published["ports"]) == [
        (5353, 53, "UDP"),
        (8000, 5000, "TCP"),
    ]
    # a port published on any host port keeps its container port
    assert objects[("Service", "db-published")]["spec"]["ports"][0]["port"] == 5432
    assert objects[("Service", "web")]["spec"]["type"] == "ClusterIP"


def test_clusterip_adds_no_published_service() -> None:
    objects, _ = _objects(_shop())
    assert not [name for kind, name in objects if name.endswith("-published")]


def test_names_that_are_not_dns_labels_are_changed_with_a_warning() -> None:
    assert k8s_name("worker_1") == "worker-1"
    assert k8s_name("Web.API") == "web-api"
    assert k8s_name("1st") == "s-1st"
    _, warnings = _objects(_shop())
    assert any(
        w.startswith("service 'worker_1': name: named 'worker-1' in Kubernetes") for w in warnings
    )


# -- containers --------------------------------------------------------------------------


def test_env_workdir_resources_and_security_context() -> None:
    objects, _ = _objects(_shop())
    db = _container(objects[("StatefulSet", "db")])
    assert db["image"] == f"registry.example.org/t/db@{DIGEST}"
    assert db["env"] == [
        {"name": "POSTGRES_PASSWORD_FILE", "value": "/run/secrets/db_password.txt"}
    ]
    assert db["resources"] == {"limits": {"memory": "512Mi", "cpu": "500m"}}
    assert db["securityContext"] == {"runAsUser": 999, "runAsGroup": 999}
    web = _container(objects[("StatefulSet", "web")])
    assert web["workingDir"] == "/app"
    assert {"name": "PRICE", "value": "$5"} in web["env"]
    assert web["securityContext"] == {
        "readOnlyRootFilesystem": True,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
    }


def test_a_user_name_without_the_image_is_a_warning() -> None:
    objects, warnings = _objects(_shop())
    assert "securityContext" not in _container(objects[("StatefulSet", "worker-1")])
    assert any(
        w.startswith("service 'worker_1': user: 'app' could not be resolved") for w in warnings
    )


# (entrypoint, command) -> (command, args): docker's rules, where an entrypoint replaces
# the image's ENTRYPOINT and clears its CMD, and a command replaces CMD.
COMMANDS = [
    (None, None, None, None),
    (None, ["serve", "-v"], None, ["serve", "-v"]),
    (["python"], None, ["python"], None),
    (["python"], ["app.py"], ["python"], ["app.py"]),
    ([], ["sh", "-c", "true"], ["sh", "-c", "true"], None),
]


@pytest.mark.parametrize(("entrypoint", "command", "k8s_command", "k8s_args"), COMMANDS)
def test_entrypoint_and_command_become_command_and_args(
    entrypoint: list[str] | None,
    command: list[str] | None,
    k8s_command: list[str] | None,
    k8s_args: list[str] | None,
) -> None:
    svc = Service("app", image=f"app@{DIGEST}", entrypoint=entrypoint, command=command)
    out = stack_to_kubernetes(Stack("s", services=[svc]), _facts(Stack("s", services=[svc])))
    container = _container(out.objects[-1])
    assert container.get("command") == k8s_command
    assert container.get("args") == k8s_args


def test_a_cleared_entrypoint_without_a_command_is_a_warning() -> None:
    svc = Service("app", image=f"app@{DIGEST}", entrypoint=[])
    out = stack_to_kubernetes(Stack("s", services=[svc]), _facts(Stack("s", services=[svc])))
    assert "command" not in _container(out.objects[-1])
    assert [w.key for w in out.warnings] == ["entrypoint"]


def test_health_checks_become_readiness_and_liveness_probes() -> None:
    objects, _ = _objects(_shop())
    db = _container(objects[("StatefulSet", "db")])
    assert db["readinessProbe"] == {
        "exec": {"command": ["pg_isready", "-h", "127.0.0.1"]},
        "periodSeconds": 1,
        "timeoutSeconds": 30,
        "failureThreshold": 60,
    }
    assert "livenessProbe" not in db  # restart "no": nothing would restart it
    web = _container(objects[("StatefulSet", "web")])
    shell = ["/bin/sh", "-c", "wget -q -O- http://127.0.0.1:5000/ || exit 1"]
    assert web["readinessProbe"]["exec"]["command"] == shell
    assert web["readinessProbe"]["initialDelaySeconds"] == 5
    assert web["livenessProbe"] == web["readinessProbe"]  # unless-stopped
    cache = _container(objects[("Deployment", "cache")])
    assert cache["readinessProbe"]["tcpSocket"] == {"port": 6379}
    assert "livenessProbe" not in cache


def test_a_disabled_health_check_gives_no_probe() -> None:
    svc = Service("app", image=f"app@{DIGEST}", healthcheck=Healthcheck(["NONE"]), restart="always")
    out = stack_to_kubernetes(Stack("s", services=[svc]), _facts(Stack("s", services=[svc])))
    assert "readinessProbe" not in _container(out.objects[-1])


def test_depends_on_healthy_is_an_init_container_waiting_for_the_service() -> None:
    objects, warnings = _objects(_shop())
    pod = objects[("StatefulSet", "web")]["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    assert wait["name"] == "wait-for-db"
    assert wait["image"] == WAIT
    assert wait["command"] == [
        "sh",
        "-c",
        "until nc -w 2 db 5432 -e true; do echo waiting for db:5432; sleep 2; done",
    ]
    assert any(
        w.startswith("service 'web': depends_on.cache: condition 'started'") for w in warnings
    )
    # web is reached on its first port; worker waits for it
    worker = objects[("StatefulSet", "worker-1")]["spec"]["template"]["spec"]
    assert "nc -w 2 web 53 -e true" in worker["initContainers"][0]["command"][2]


def test_secrets_are_referenced_by_name_and_mounted_at_run_secrets() -> None:
    objects, warnings = _objects(_shop())
    pod = objects[("StatefulSet", "db")]["spec"]["template"]["spec"]
    assert {
        "name": "secret-db-password-txt",
        "secret": {
            "secretName": "shop-db-password-txt",
            "items": [{"key": "db_password.txt", "path": "db_password.txt"}],
        },
    } in pod["volumes"]
    assert {
        "name": "secret-db-password-txt",
        "mountPath": "/run/secrets/db_password.txt",
        "subPath": "db_password.txt",
        "readOnly": True,
    } in _container(objects[("StatefulSet", "db")])["volumeMounts"]
    assert not [k for k, _ in objects if k == "Secret"]
    assert any(
        w.startswith("service 'db': secrets.db_password.txt: a secret from a host file")
        for w in warnings
    )


def test_what_kubernetes_cannot_express_is_named_by_service_and_key() -> None:
    _, warnings = _objects(_shop())
    keys = {w.split(": ")[0] + ": " + w.split(": ")[1] for w in warnings}
    assert keys >= {
        "stack: networks",  # two networks: Kubernetes has one flat network
        "service 'web': volumes[./conf]",  # a bind mount of a host path
        "service 'web': depends_on.cache",  # 'started'
        "service 'worker_1': restart",  # on-failure:3
        "service 'worker_1': init",
        "service 'worker_1': user",
        "service 'db': secrets.db_password.txt",
    }


# -- export() and the files ----------------------------------------------------------------


def test_export_writes_one_file_per_object_and_a_readme(tmp_path: Path) -> None:
    stack = load_stack(SHOP / "stack.py")
    out = tmp_path / "k8s"
    result = export(stack, out, format="kubernetes", wait_image=WAIT, namespace="shop")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "cache-deployment.yaml",
            "cache-service.yaml",
            "database-service.yaml",
            "db-service.yaml",
            "db-statefulset.yaml",
            "shop-uploads-persistentvolumeclaim.yaml",
            "web-service.yaml",
            "web-statefulset.yaml",
            "worker-1-service.yaml",
            "worker-1-statefulset.yaml",
            "README.md",
        ]
    )
    assert sorted(p.name for p in result.files) == names
    docs = [d for d in yaml.safe_load_all(result.text) if d]
    assert docs == result.objects
    for obj in result.objects:
        name = f"{obj['metadata']['name']}-{obj['kind'].lower()}.yaml"
        assert yaml.safe_load((out / name).read_text()) == obj
        assert "&id" not in (out / name).read_text()  # no YAML anchors
    readme = (out / "README.md").read_text()
    assert (
        "kubectl -n shop create secret generic shop-db-password-txt "
        "--from-file=db_password.txt=./db_password.txt" in readme
    )
    assert (
        "kubectl -n shop create secret generic shop-api-token "
        '--from-literal=API_TOKEN="${API_TOKEN}"' in readme
    )
    assert "kubectl -n shop port-forward service/web 5000:5000" in readme
    assert "## Not exported" in readme and "volumes[./conf]" in readme
    assert result.images["db"] == f"docker.io/library/postgres@sha256:{'a' * 64}"


def test_secret_values_are_in_no_exported_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "tok-value-never-written")
    stack = load_stack(SHOP / "stack.py")
    values = ["tok-value-never-written", (SHOP / "db_password.txt").read_text().strip()]
    for fmt in ("kubernetes", "compose"):
        result = export(stack, tmp_path / fmt, format=fmt, wait_image=WAIT)
        names = {path.name for path in result.files}
        assert {"compose": "compose.yaml", "kubernetes": "web-statefulset.yaml"}[fmt] in names
        for path in result.files:
            text = path.read_bytes()
            assert not [v for v in values if v.encode() in text], path
        assert not [v for v in values if v in result.text]


def test_strict_makes_warnings_one_error_and_writes_nothing(tmp_path: Path) -> None:
    stack = load_stack(SHOP / "stack.py")
    with pytest.raises(EnvkitError) as caught:
        export(stack, tmp_path / "out", format="kubernetes", wait_image=WAIT, strict=True)
    message = str(caught.value)
    assert "cannot be exported to kubernetes (--strict)" in message
    assert "service 'web': volumes[./conf]" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"format": "helm"}, "unknown export format 'helm'"),
        ({"format": "kubernetes", "namespace": "Bad_NS"}, "not a Kubernetes namespace name"),
        ({"format": "kubernetes", "expose": "ingress"}, "--expose 'ingress'"),
        ({"format": "compose", "namespace": "x"}, "--namespace is for --format kubernetes"),
        ({"format": "compose", "expose": "nodeport"}, "--expose is for --format kubernetes"),
        ({"format": "kubernetes", "push": "not a registry!"}, "--push 'not a registry!'"),
    ],
)
def test_bad_options_are_one_clear_error(options: dict[str, str], needle: str) -> None:
    stack = Stack("s", services=[Service("app", image=f"app@{DIGEST}")])
    if "push" in options:
        stack = Stack("s", services=[Service("app", image=Image.scratch().cmd(["x"]))])
    with pytest.raises(EnvkitError) as caught:
        export(stack, **options)  # type: ignore[arg-type]
    assert needle in str(caught.value)


def test_the_wait_image_is_pinned_like_every_image() -> None:
    stack = load_stack(SHOP / "stack.py")
    with pytest.raises(EnvkitError) as caught:
        export(stack, format="kubernetes", wait_image="busybox:1.36")
    assert "no digest is known for busybox:1.36" in str(caught.value)
    assert "envkit pull busybox:1.36" in str(caught.value)
    assert os.environ["ENVKIT_HOME"]


def test_a_new_export_removes_the_manifests_of_services_gone_since(tmp_path: Path) -> None:
    shop = load_stack(SHOP / "stack.py")
    out = tmp_path / "k8s"
    export(shop, out, format="kubernetes", wait_image=WAIT)
    mine = out / "notes.yaml"
    mine.write_text("kind: ConfigMap\nmetadata: {name: notes}\n")
    other = out / "web-deployment.yaml"  # another stack's object under a name we use
    smaller = Stack("shop", services=[shop["cache"]])
    result = smaller.export(out, format="kubernetes")
    removed = sorted(p.name for p in result.removed)
    assert "db-statefulset.yaml" in removed and "web-service.yaml" in removed
    assert "cache-deployment.yaml" not in removed
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "cache-deployment.yaml",
        "cache-service.yaml",
        "notes.yaml",
    ]
    other.write_text(
        yaml.safe_dump(
            {
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app.kubernetes.io/part-of": "another"}},
            }
        )
    )
    again = smaller.export(out, format="kubernetes")
    assert again.removed == [] and other.exists() and mine.exists()


def test_a_readiness_probes_port_is_a_known_port() -> None:
    svc = Service("cache", image=f"redis@{DIGEST}", ready=Ready.tcp(6379))
    stack = Stack("s", services=[svc])
    out = stack_to_kubernetes(stack, _facts(stack))
    (service,) = [o for o in out.objects if o["kind"] == "Service"]
    assert [p["port"] for p in service["spec"]["ports"]] == [6379]


def test_an_anonymous_volume_is_an_empty_dir_of_the_pod() -> None:
    """compose's ``- /app/node_modules`` lives as long as the container: in Kubernetes,
    an ``emptyDir`` of the pod, so the service stays a Deployment (no claim)."""
    scratch = Volume("web-anon-0123456789ab", anonymous=True)
    stack = Stack("anon", services=[Service("web", image="busybox", volumes={scratch: "/scratch"})])
    objects, _ = _objects(stack)
    assert ("StatefulSet", "web") not in objects
    pod = objects[("Deployment", "web")]["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "web-anon-0123456789ab", "emptyDir": {}}]
    assert _container(objects[("Deployment", "web")])["volumeMounts"] == [
        {"name": "web-anon-0123456789ab", "mountPath": "/scratch"}
    ]
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in objects)
    _validate(list(objects.values()))


def test_stop_grace_period_is_the_pods_termination_grace() -> None:
    stack = Stack("gp", services=[Service("db", image="busybox", stop_grace_period=1.5)])
    objects, _ = _objects(stack)
    pod = objects[("Deployment", "db")]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 2  # whole seconds, never shorter
    _validate(list(objects.values()))


def test_shm_size_is_a_memory_empty_dir_at_dev_shm() -> None:
    stack = Stack("shm", services=[Service("db", image="busybox", shm_size="1g")])
    objects, _ = _objects(stack)
    pod = objects[("Deployment", "db")]["spec"]["template"]["spec"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}} in pod["volumes"]
    mounts = _container(objects[("Deployment", "db")])["volumeMounts"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in mounts
    _validate(list(objects.values()))


def test_seccomp_unconfined_is_the_containers_seccomp_profile() -> None:
    stack = Stack("sc", services=[Service("a", image="busybox", seccomp=False)])
    objects, _ = _objects(stack)
    security = _container(objects[("Deployment", "a")])["securityContext"]
    assert security["seccompProfile"] == {"type": "Unconfined"}
    _validate(list(objects.values()))


def test_extra_hosts_are_the_pods_host_aliases_and_host_gateway_a_warning() -> None:
    hosts = ["db:10.0.0.5", "db2:10.0.0.5", "x:host-gateway"]
    stack = Stack("eh", services=[Service("a", image="busybox", extra_hosts=hosts)])
    objects, warnings = _objects(stack)
    pod = objects[("Deployment", "a")]["spec"]["template"]["spec"]
    assert pod["hostAliases"] == [{"ip": "10.0.0.5", "hostnames": ["db", "db2"]}]
    assert any("host-gateway" in w for w in warnings)
    _validate(list(objects.values()))


def test_sysctls_are_the_pods_security_context() -> None:
    service = Service("a", image="busybox", sysctls={"net.core.somaxconn": 1024})
    objects, _ = _objects(Stack("sc", services=[service]))
    pod = objects[("Deployment", "a")]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}
    _validate(list(objects.values()))


def test_network_mode_host_is_the_pods_host_network() -> None:
    stack = Stack("nm", services=[Service("media", image="busybox", network_mode="host")])
    objects, _ = _objects(stack)
    assert objects[("Deployment", "media")]["spec"]["template"]["spec"]["hostNetwork"] is True
    _validate(list(objects.values()))
