"""Dual-stack networks, the parts without namespaces: IPv6 subnets and addresses, hosts
lines (AAAA), ip6tables rules, the egress policy for IPv6, [::1] port mappings, the
spec's ``ipv6`` and compose's ``enable_ipv6``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from envkit.compose import load, to_compose
from envkit.errors import NetworkError
from envkit.network import egress, firewall, ipam, names, ports
from envkit.network.state import Endpoint, NetworkInfo
from envkit.spec import Network

V6 = NetworkInfo(
    "six",
    "10.89.1.0/24",
    "10.89.1.1",
    "ek-six",
    subnet6="fd12:3456:789a:1::/64",
    gateway6="fd12:3456:789a:1::1",
)
V4 = NetworkInfo("four", "10.89.2.0/24", "10.89.2.1", "ek-four")


def test_ula_prefix_is_a_unique_local_48_per_home() -> None:
    one, two = ipam.ula_prefix("/home/a/envkit"), ipam.ula_prefix("/home/b/envkit")
    assert one.prefixlen == 48 and one.subnet_of(ipaddress.IPv6Network("fd00::/8"))
    assert one != two
    assert ipam.ula_prefix("/home/a/envkit") == one  # stable for one home


def test_ipv6_subnets_avoid_taken_ones_and_clashes_are_refused() -> None:
    seed = "/home/a/envkit"
    first = ipam.choose_subnet6([], seed)
    assert first.prefixlen == 64 and first.subnet_of(ipam.ula_prefix(seed))
    second = ipam.choose_subnet6([str(first)], seed)
    assert second != first and not second.overlaps(first)
    assert str(ipam.choose_subnet6([], seed, "fd00:1::/64")) == "fd00:1::/64"
    with pytest.raises(NetworkError, match="overlaps fd00:1::/64"):
        ipam.choose_subnet6(["fd00:1::/64"], seed, "fd00:1::/80")
    with pytest.raises(NetworkError, match="not an IPv6 network"):
        ipam.choose_subnet6([], seed, "10.0.0.0/24")
    with pytest.raises(NetworkError, match="too small"):
        ipam.choose_subnet6([], seed, "fd00::/127")
    with pytest.raises(NetworkError, match="smaller than the IPv4 subnet"):
        ipam.choose_subnet6([], seed, "fd00::/120", room=1024)


def test_ipv4_subnet_refuses_an_ipv6_one_with_a_hint() -> None:
    with pytest.raises(NetworkError, match="IPv6 network where an IPv4 one") as err:
        ipam.parse_subnet("fd00::/64")
    assert err.value.hint and "--ipv6" in err.value.hint


def test_ipv6_address_has_the_ipv4_host_number() -> None:
    assert str(ipam.gateway6(ipaddress.IPv6Network("fd00:1::/64"))) == "fd00:1::1"
    assert ipam.address6("10.89.1.0/24", "fd00:1::/64", "10.89.1.2") == "fd00:1::2"
    assert ipam.address6("10.89.1.0/24", "fd00:1::/64", "10.89.1.254") == "fd00:1::fe"


def test_hosts_file_answers_both_families() -> None:
    everyone = [
        Endpoint("six", "web", "10.89.1.2", "eth0", "v1", ("www",), ip6="fd12:3456:789a:1::2"),
        Endpoint("six", "db", "10.89.1.3", "eth0", "v2", ip6="fd12:3456:789a:1::3"),
        Endpoint("four", "old", "10.89.2.2", "eth0", "v3"),
    ]
    text = names.render_hosts("db", everyone, {"six": V6, "four": V4})
    for line in (
        "10.89.1.3\tdb\n",
        "fd12:3456:789a:1::3\tdb\n",
        "10.89.1.2\tweb\n",
        "fd12:3456:789a:1::2\tweb\n",
        "10.89.1.2\twww\n",
        "fd12:3456:789a:1::2\twww\n",
    ):
        assert line in text
    assert "old" not in text  # another network: neither family
    # IPv4 first (A before AAAA), as /etc/hosts order decides getaddrinfo's for files.
    assert text.index("10.89.1.2\tweb") < text.index("fd12:3456:789a:1::2\tweb")


def test_ip6tables_rules_only_for_dual_stack_networks() -> None:
    assert firewall.rules6([V4]) == ""
    internal = V6.replace(name="in", bridge="ek-in", subnet6="fd12::/64", internal=True)
    text = firewall.rules6([V4, V6, internal])
    assert ":FORWARD DROP" in text and "-A FORWARD -i ek-six -o ek-six -j ACCEPT" in text
    assert "ek-four" not in text
    assert "-A PREROUTING -d fd12:3456:789a:1::/64 -j RETURN" in text
    assert "-A PREROUTING -i ek-in -j RETURN" in text
    redirect = f"-A PREROUTING -i ek-six -p tcp -j REDIRECT --to-ports {egress.EGRESS_PORT}"
    assert redirect in text and "-i ek-in -p tcp" not in text
    assert text.index("-d fd12:3456:789a:1::/64 -j RETURN") < text.index(redirect)


def test_egress_policy_for_ipv6() -> None:
    nets = [V6, V4]
    assert egress.decide(nets, "fd12:3456:789a:1::2", "2001:db8::5", 443) == ("2001:db8::5", 443)
    # Another envkit subnet (either family) and loopback are refused.
    assert egress.decide(nets, "fd12:3456:789a:1::2", "fd12:3456:789a:1::3", 80) is None
    assert egress.decide(nets, "fd12:3456:789a:1::2", "10.89.2.2", 80) is None
    assert egress.decide(nets, "fd12:3456:789a:1::2", "::1", 80) is None
    assert egress.decide(nets, "fd99::2", "2001:db8::5", 80) is None  # not ours


def test_host_ipv6_route_is_read_from_proc(tmp_path: Path) -> None:
    table = tmp_path / "ipv6_route"
    zero = "0" * 32
    table.write_text(f"{zero} 00 {zero} 00 fd000000000000000000000000000001 400 2 0 3 eth0\n")
    assert egress.host_has_ipv6_route(str(table))
    table.write_text(f"{zero} 00 {zero} 00 {zero} ffffffff 1 0 200 lo\n")
    assert not egress.host_has_ipv6_route(str(table))
    assert not egress.host_has_ipv6_route(str(tmp_path / "missing"))


def test_port_mappings_take_ipv6_host_addresses() -> None:
    mapping = ports.PortMapping.parse("[::1]:8080:80")
    assert mapping == ports.PortMapping(8080, 80, "tcp", "::1")
    assert str(mapping) == "[::1]:8080->80/tcp"
    assert ports.PortMapping.parse("8080:80").host == "127.0.0.1:8080"
    with pytest.raises(NetworkError, match="bad port mapping"):
        ports.PortMapping.parse("::1:8080:80")


def test_a_loopback_mapping_is_bound_on_both_loopbacks_and_shown_once() -> None:
    held = ports.reserve(["0:80", "[::1]:0:81"])
    try:
        bound = held.mappings
        v4 = [m for m in bound if m.host_ip == "127.0.0.1"]
        v6 = [m for m in bound if m.host_ip == "::1"]
        assert len(v4) == 1 and len(v6) == 2
        assert v4[0].host_port in {m.host_port for m in v6 if m.container_port == 80}
        shown = ports.shown(bound)
        assert [m.container_port for m in shown] == [80, 81]
    finally:
        held.close()


def test_spec_network_ipv6_and_its_canonical_form() -> None:
    assert Network("n").ipv6 is False
    assert "ipv6" not in Network("n").canonical()  # IPv4 networks keep their digest
    assert Network("n", ipv6=True).canonical()["ipv6"] is True
    with pytest.raises(Exception, match="expected True or False"):
        Network("n", ipv6="yes")  # type: ignore[arg-type]


def test_compose_enable_ipv6_maps_to_a_dual_stack_network(tmp_path: Path) -> None:
    # compose-spec 06-networks.md: "`enable_ipv6` enables IPv6 networking."
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: busybox\n    networks: [front]\n"
        "networks:\n  front:\n    enable_ipv6: true\n  back: {}\n"
    )
    project = load(tmp_path / "compose.yaml", environ={"HOME": str(tmp_path)})
    by_name = {n.name: n for n in project.stack.networks}
    assert by_name["front"].ipv6 is True and by_name["back"].ipv6 is False
    form = to_compose(project)
    assert form["networks"]["front"]["enable_ipv6"] is True
    assert "enable_ipv6" not in form["networks"]["back"]
