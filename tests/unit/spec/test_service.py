"""Service: option parsing, normalisation and validation."""

from __future__ import annotations

import pytest

from envkit import Healthcheck, Image, Network, Secret, Service, SpecError, Volume
from envkit.spec.mounts import Mount
from envkit.spec.ports import PortMapping

IMG = Image.from_("busybox")


def svc(**kwargs: object) -> Service:
    kwargs.setdefault("image", IMG)
    return Service("web", **kwargs)  # type: ignore[arg-type]


def test_defaults() -> None:
    web = Service("web", image="busybox")
    assert web.image == IMG
    assert (web.restart, web.ports, web.networks, web.command, web.read_only) == (
        "no",
        (),
        (),
        None,
        False,
    )


def test_ports_in_every_form() -> None:
    web = svc(ports={8000: 5000, "0.0.0.0:8443": "443", 0: "53/udp"})
    assert web.ports == (
        PortMapping(0, 53, "udp"),
        PortMapping(8000, 5000),
        PortMapping(8443, 443, "tcp", "0.0.0.0"),
    )
    listed = svc(ports=["8000:5000", "127.0.0.1:53:53/udp", "[::1]:9000:9000", "7000", 7001])
    assert [str(p) for p in listed.ports] == [
        "127.0.0.1:0:7000/tcp",
        "127.0.0.1:0:7001/tcp",
        "127.0.0.1:53:53/udp",
        "127.0.0.1:8000:5000/tcp",
        "[::1]:9000:9000/tcp",
    ]


@pytest.mark.parametrize(
    "ports",
    [
        {8000: 0},
        {70000: 80},
        {-1: 80},
        {True: 80},
        {8000: "5000/icmp"},
        ["8000:5000:1"],
        ["a:b"],
        ["999.1.1.1:80:80"],
        "8000:5000",
        [8000.5],
        ["8000:5000", "0.0.0.0:8000:6000"],
    ],
)
def test_bad_ports(ports: object) -> None:
    with pytest.raises(SpecError) as info:
        svc(ports=ports)
    assert info.value.field.startswith("Service('web').ports")


def test_volumes() -> None:
    data = Volume("data")
    web = svc(volumes={data: "/data", "./conf": "/etc/app:ro", "cache": "/cache:rw"})
    assert web.volumes == (
        Mount(Volume("cache"), "/cache"),
        Mount(data, "/data"),
        Mount("./conf", "/etc/app", read_only=True),
    )
    assert web.volume_objects == (Volume("cache"), data)


@pytest.mark.parametrize(
    "volumes",
    [
        {"./x": "relative"},
        {"./x": "/a", "./y": "/a:ro"},
        {"bad name": "/x"},
        ["./x:/x"],
        {"./x": "/"},  # docker: "destination can't be '/'"
        {"data": "/a/..:ro"},
    ],
)
def test_bad_volumes(volumes: object) -> None:
    with pytest.raises(SpecError) as info:
        svc(volumes=volumes)
    assert info.value.field.startswith("Service('web').volumes")


def test_depends_on_forms() -> None:
    db = Service("db", image=IMG)
    assert svc(depends_on=[db, "cache"]).depends_on == (("cache", "started"), ("db", "started"))
    assert svc(depends_on={db: "healthy"}).depends_on == (("db", "healthy"),)


@pytest.mark.parametrize("deps", [{"db": "ready"}, ["web"], "db", {"bad name": "started"}])
def test_bad_depends_on(deps: object) -> None:
    with pytest.raises(SpecError) as info:
        svc(depends_on=deps)
    assert info.value.field.startswith("Service('web').depends_on")


def test_commands() -> None:
    assert svc(command="python -m http.server 'a b'").command == (
        "python",
        "-m",
        "http.server",
        "a b",
    )
    assert svc(entrypoint=["/init"]).entrypoint == ("/init",)
    with pytest.raises(SpecError):
        svc(command="unterminated 'quote")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("256m", 256 << 20), ("1.5g", 3 << 29), ("512MiB", 512 << 20), (1024, 1024), ("64k", 65536)],
)
def test_memory(value: object, expected: int) -> None:
    assert svc(memory=value).memory == expected


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("memory", "lots"),
        ("memory", 0),
        ("cpus", 0),
        ("cpus", "2"),
        ("pids_limit", 0),
        ("restart", "sometimes"),
        ("restart", "on-failure:0"),
        ("hostname", "bad_host"),
        ("aliases", ["no spaces"]),
        ("workdir", "app"),
        ("tmpfs", ["run"]),
        ("tmpfs", ["/:size=1m"]),
        ("stop_grace_period", -1),
        ("shm_size", "lots"),
        ("shm_size", 0),
        ("seccomp", "no"),
        ("network_mode", "bridge"),
        ("stop_grace_period", "30s"),
        ("read_only", "yes"),
        ("user", "a b"),
        ("env", {"A": None}),
        ("labels", ["a=b"]),
        ("healthcheck", ["CMD", "true"]),
        ("image", 42),
        ("networks", "backend"),
        ("secrets", Secret.from_env("X")),
    ],
)
def test_option_validation_names_the_field(option: str, value: object) -> None:
    with pytest.raises(SpecError) as info:
        svc(**{option: value})
    assert info.value.field.startswith(f"Service('web').{option}")


def test_unknown_option_suggests_closest() -> None:
    with pytest.raises(SpecError) as info:
        svc(enviroment={"A": "1"})
    assert info.value.field == "Service('web').enviroment"
    with pytest.raises(SpecError) as info:
        svc(prots={80: 80})
    assert info.value.hint == "did you mean 'ports'?"


def test_restart_policies() -> None:
    for policy in ("no", "always", "on-failure", "on-failure:5", "unless-stopped"):
        assert svc(restart=policy).restart == policy


def test_order_insensitive_options_make_equal_services() -> None:
    a = svc(
        env={"A": "1", "B": "2"},
        networks=[Network("x"), "y"],
        aliases=["b", "a"],
        ports={1: 1, 2: 2},
        secrets=[Secret.from_env("A"), Secret.from_env("B")],
        tmpfs=["/run", "/tmp"],
        healthcheck=Healthcheck("true"),
    )
    b = svc(
        env={"B": "2", "A": 1},
        networks=["y", "x"],
        aliases=["a", "b"],
        ports=["127.0.0.1:2:2", "1:1"],
        secrets=[Secret.from_env("B"), Secret.from_env("A")],
        tmpfs=["/tmp", "/run"],
        healthcheck=Healthcheck(["CMD-SHELL", "true"]),
    )
    assert a == b
    assert hash(a) == hash(b)
    assert a.cache_key() == b.cache_key()


def test_same_name_different_networks_is_rejected() -> None:
    with pytest.raises(SpecError, match="two different networks"):
        svc(networks=[Network("x"), Network("x", internal=True)])
