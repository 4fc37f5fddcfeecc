"""The networking engine's pure parts: IPAM, rules, egress policy, names, port syntax."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envkit.network import NetworkError, PortMapping, egress, firewall, ipam, names
from envkit.network.state import Endpoint, NetworkInfo

A = NetworkInfo("a", "10.89.0.0/24", "10.89.0.1", "ek-a")
B = NetworkInfo("b", "10.89.1.0/24", "10.89.1.1", "ek-b", host_loopback=True)
SEALED = NetworkInfo("s", "10.89.2.0/24", "10.89.2.1", "ek-s", internal=True, host_loopback=True)


def test_subnets_avoid_taken_ones_and_clashes_are_refused() -> None:
    assert str(ipam.choose_subnet([])) == "10.89.0.0/24"
    assert str(ipam.choose_subnet(["10.89.0.0/24", "10.89.2.0/24"])) == "10.89.1.0/24"
    assert str(ipam.choose_subnet(["10.89.0.0/23"])) == "10.89.2.0/24"
    assert str(ipam.choose_subnet(["10.89.0.0/24"], "192.168.7.0/24")) == "192.168.7.0/24"
    with pytest.raises(NetworkError, match=r"overlaps 10\.89\.0\.0/24"):
        ipam.choose_subnet(["10.89.0.0/24"], "10.89.0.128/25")
    for bad in ("10.89.0.1/24", "fd00::/64", "10.0.0.0/31", "nonsense"):
        with pytest.raises(NetworkError):
            ipam.choose_subnet([], bad)


def test_addresses_are_round_robin_and_skip_gateway_and_used() -> None:
    assert ipam.allocate("10.89.0.0/24", []) == "10.89.0.2"
    assert ipam.allocate("10.89.0.0/24", ["10.89.0.2"], last="10.89.0.2") == "10.89.0.3"
    # a released address is not reused at once: the next one after the last is
    assert ipam.allocate("10.89.0.0/24", [], last="10.89.0.3") == "10.89.0.4"
    assert ipam.allocate("10.89.0.0/24", [], last="10.89.0.254") == "10.89.0.2"
    assert ipam.allocate("10.0.0.0/30", []) == "10.0.0.2"
    with pytest.raises(NetworkError, match="no free address"):
        ipam.allocate("10.0.0.0/30", ["10.0.0.2"])


def test_rules_isolate_networks_and_redirect_only_allowed_egress() -> None:
    text = firewall.rules([A, B, SEALED], egress.HOST_LOOPBACK)
    assert ":FORWARD DROP" in text
    assert "-A FORWARD -i ek-a -o ek-a -j ACCEPT" in text
    assert "-A FORWARD -i ek-a -o ek-b" not in text
    assert "-A PREROUTING -d 10.89.1.0/24 -j RETURN" in text
    assert "-A PREROUTING -i ek-s -j RETURN" in text
    assert f"-A PREROUTING -i ek-a -d {egress.HOST_LOOPBACK} -j RETURN" in text
    assert f"-i ek-b -d {egress.HOST_LOOPBACK}" not in text
    redirects = [line for line in text.splitlines() if "REDIRECT" in line]
    assert [r.split()[3] for r in redirects] == ["ek-a", "ek-b"]
    assert text.index("RETURN") < text.index("REDIRECT")


def test_egress_policy() -> None:
    nets = [A, B, SEALED]
    assert egress.decide(nets, "10.89.0.5", "192.0.2.10", 443) == ("192.0.2.10", 443)
    assert egress.decide(nets, "10.89.0.5", "10.89.1.7", 80) is None  # another network
    assert egress.decide(nets, "10.89.0.5", egress.HOST_LOOPBACK, 80) is None  # not mapped
    assert egress.decide(nets, "10.89.1.5", egress.HOST_LOOPBACK, 80) == ("127.0.0.1", 80)
    assert egress.decide(nets, "10.89.2.5", "192.0.2.10", 443) is None  # internal
    assert egress.decide(nets, "10.89.2.5", egress.HOST_LOOPBACK, 80) is None
    assert egress.decide(nets, "172.16.0.1", "192.0.2.10", 443) is None  # unknown source


def test_resolvers_from_setting_or_resolv_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, envkit_home: Path
) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search x\nnameserver 127.0.0.53\nnameserver fe80::1\nnameserver 10.0.0.2\n")
    assert egress.resolvers(str(conf)) == [("127.0.0.53", 53), ("10.0.0.2", 53)]
    monkeypatch.setenv("ENVKIT_NETWORK_DNS", "127.0.0.1:5353, 10.1.1.1")
    assert egress.resolvers(str(conf)) == [("127.0.0.1", 5353), ("10.1.1.1", 53)]


def ep(net: str, ctr: str, ip: str, aliases: tuple[str, ...] = ()) -> Endpoint:
    return Endpoint(net, ctr, ip, "eth0", "veth", aliases)


def test_hosts_file_lists_only_neighbours_with_aliases() -> None:
    everyone = [
        ep("a", "web", "10.89.0.2", ("www",)),
        ep("a", "db", "10.89.0.3"),
        ep("b", "db", "10.89.1.2"),
        ep("b", "cache", "10.89.1.3"),
    ]
    nets = {"a": A, "b": B}
    web = names.render_hosts("web", everyone, nets)
    assert "10.89.0.2\tweb\n" in web and "10.89.0.2\twww\n" in web
    assert "10.89.0.3\tdb\n" in web
    assert "cache" not in web and "10.89.1.2" not in web
    assert "host.envkit.internal" not in web
    db = names.render_hosts("db", everyone, nets)
    assert "10.89.1.3\tcache\n" in db and "10.89.0.2\tweb\n" in db
    assert f"{egress.HOST_LOOPBACK}\thost.envkit.internal\n" in db
    assert "nameserver 10.89.0.1\n" in names.render_resolv("web", everyone, nets)
    assert "nameserver" not in names.render_resolv("x", [ep("s", "x", "10.89.2.2")], {"s": SEALED})


def test_hosts_file_is_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    names.write_in_place(path, "a much longer first version\n")
    inode = os.stat(path).st_ino
    names.write_in_place(path, "short\n")
    assert path.read_text() == "short\n"
    assert os.stat(path).st_ino == inode


def test_port_mappings_parse_like_docker() -> None:
    assert PortMapping.parse("8080:80") == PortMapping(8080, 80, "tcp", "127.0.0.1")
    assert PortMapping.parse("0.0.0.0:53:53/udp") == PortMapping(53, 53, "udp", "0.0.0.0")
    assert PortMapping.parse("0:80").host_port == 0
    for bad in ("80", "a:80", "8080:0", "70000:80", "8080:80/sctp", "1.2.3:80:80"):
        with pytest.raises(NetworkError):
            PortMapping.parse(bad)


def test_records_are_immutable_values_that_round_trip_through_json() -> None:
    ep = Endpoint("n", "c", "10.89.0.2", "eth0", "vek1", ("web",), pid=7, pid_start=9)
    assert Endpoint.from_json(ep.to_json()) == ep
    assert ep.to_json()["aliases"] == ["web"]
    assert hash(ep) == hash(Endpoint.from_json(ep.to_json()))
    mapping = PortMapping(8080, 80)
    assert mapping.to_json() == {
        "host_port": 8080,
        "container_port": 80,
        "protocol": "tcp",
        "host_ip": "127.0.0.1",
    }
    assert PortMapping(**mapping.to_json()) == mapping
    assert repr(mapping) == (
        "PortMapping(host_port=8080, container_port=80, protocol='tcp', host_ip='127.0.0.1')"
    )
    assert A.with_last_ip("10.89.0.9").last_ip == "10.89.0.9" and A.last_ip == ""
    with pytest.raises(AttributeError):
        mapping.host_port = 1  # type: ignore[misc]


def test_rules_are_skipped_without_iptables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "RESTORE", "envkit-no-such-iptables-restore")
    assert firewall.apply(firewall.rules([A]), "/nonexistent/lock") is False
