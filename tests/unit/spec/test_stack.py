"""Stack: whole-stack validation and what it collects."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit import Image, Network, Secret, Service, SpecError, Stack, Volume

IMG = Image.from_("busybox")


def svc(name: str, **kwargs: object) -> Service:
    return Service(name, image=IMG, **kwargs)  # type: ignore[arg-type]


def test_collects_volumes_networks_secrets_and_default_network() -> None:
    data, net = Volume("data"), Network("backend")
    build_secret, run_secret = Secret.from_env("TOKEN"), Secret.from_env("PW")
    db = Service(
        "db",
        image=IMG.run("x", secrets=[build_secret]),
        volumes={data: "/data"},
        secrets=[run_secret],
        networks=[net],
    )
    web = svc("web", depends_on={db: "healthy"})
    stack = Stack("shop", services=[web, db], volumes=[Volume("extra")])
    assert [s.name for s in stack.services] == ["db", "web"]
    assert stack.volumes == (data, Volume("extra"))
    assert stack.networks == (net, Network("default"))
    assert stack.secrets == (run_secret, build_secret)
    assert stack.service_networks("web") == (Network("default"),)
    assert stack.service_networks("db") == (net,)
    assert stack.canonical()["services"]["web"]["networks"] == ["default"]
    assert stack["web"] is web and "db" in stack and "nope" not in stack
    assert stack.start_order() == ["db", "web"]
    with pytest.raises(KeyError):
        stack["nope"]


def test_no_default_network_when_every_service_names_one() -> None:
    stack = Stack("s", services=[svc("a", networks=["n"])])
    assert [n.name for n in stack.networks] == ["n"]


@pytest.mark.parametrize("name", ["Shop", "-shop", "my shop", "", "shop.app"])
def test_project_name_syntax(name: str) -> None:
    with pytest.raises(SpecError) as info:
        Stack(name, services=[svc("a")])
    assert info.value.field == f"Stack({name!r}).name"


def test_service_names_must_be_unique() -> None:
    with pytest.raises(SpecError, match="two different services are named 'a'"):
        Stack("s", services=[svc("a"), svc("a", restart="always")])
    assert len(Stack("s", services=[svc("a"), svc("a")]).services) == 1


def test_depends_on_target_must_exist() -> None:
    with pytest.raises(SpecError) as info:
        Stack("s", services=[svc("web", depends_on=["db"])])
    assert info.value.field == "Service('web').depends_on"
    assert "'db'" in str(info.value)


def test_cycles_are_named() -> None:
    a = svc("a", depends_on=["b"])
    b = svc("b", depends_on=["c"])
    c = svc("c", depends_on=["a"])
    with pytest.raises(SpecError, match="cycle: a -> b -> c -> a"):
        Stack("s", services=[c, b, a])
    with pytest.raises(SpecError, match="cycle: x -> y -> x"):
        Stack("s", services=[svc("x", depends_on=["y"]), svc("y", depends_on={"x": "healthy"})])


def test_host_port_clash_between_services() -> None:
    with pytest.raises(SpecError, match="'a' and 'b' both publish host port 8000/tcp"):
        Stack("s", services=[svc("a", ports={8000: 80}), svc("b", ports=["0.0.0.0:8000:81"])])
    # Any-port, other protocol and other address do not clash.
    Stack(
        "s",
        services=[
            svc("a", ports={0: 80, 8000: 80}),
            svc("b", ports=["0:80", "8000:80/udp", "127.0.0.2:8000:80"]),
        ],
    )


def test_conflicting_volume_and_network_definitions() -> None:
    with pytest.raises(SpecError, match="two different volumes"):
        Stack(
            "s",
            services=[svc("a", volumes={Volume("v", backend="tmpfs"): "/v"})],
            volumes=[Volume("v")],
        )
    with pytest.raises(SpecError, match="two different networks"):
        Stack(
            "s",
            services=[svc("a", networks=[Network("n")])],
            networks=[Network("n", internal=True)],
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"services": []},
        {"services": svc("a")},
        {"services": ["a"]},
        {"volumes": ["v"]},
        {"servics": []},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    kwargs.setdefault("services", [svc("a")])
    with pytest.raises(SpecError):
        Stack("s", **kwargs)  # type: ignore[arg-type]


def test_base_dir_is_not_part_of_identity(tmp_path: Path) -> None:
    stack = Stack("s", services=[svc("a")])
    moved = stack.with_base_dir(tmp_path)
    assert stack.base_dir is None and moved.base_dir == tmp_path
    assert moved == stack and moved.cache_key() == stack.cache_key()
