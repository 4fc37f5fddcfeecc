"""``--sysctl`` / compose's ``sysctls``: only the container's own namespaces' parameters
(runc's validation)."""

from __future__ import annotations

import pytest

from envkit import Service
from envkit.errors import SpecError
from envkit.spec import sysctls

ACCEPTED = [
    "net.core.somaxconn=1024",
    "net.ipv4.ip_unprivileged_port_start=0",
    "net.ipv4.conf.all.src_valid_mark=1",
    "fs.mqueue.msg_max=100",
    "kernel.shmmax=68719476736",
    "kernel.sem=250 32000 100 128",
]
REFUSED = [
    "kernel.panic=1",  # the host's
    "vm.overcommit_memory=1",
    "kernel.hostname=x",  # docker: use --hostname
    "fs.file-max=10",
    "net..x=1",
    "net.core/../../x=1",
    "net.core.somaxconn=",
    "net.core.somaxconn",
]


@pytest.mark.parametrize("item", ACCEPTED)
def test_namespaced_parameters_are_accepted(item: str) -> None:
    name, value = item.split("=", 1)
    assert sysctls.parse("sysctls", [item]) == ((name, value),)


@pytest.mark.parametrize("item", REFUSED)
def test_the_hosts_parameters_and_bad_names_are_refused(item: str) -> None:
    with pytest.raises(SpecError):
        sysctls.parse("sysctls", [item])


def test_a_service_takes_a_mapping_or_a_list() -> None:
    one = Service("a", image="busybox", sysctls={"net.core.somaxconn": 1024})
    other = Service("a", image="busybox", sysctls=["net.core.somaxconn=1024"])
    assert one == other and one.sysctls == (("net.core.somaxconn", "1024"),)
    assert one.canonical()["sysctls"] == {"net.core.somaxconn": "1024"}
    assert "sysctls" not in Service("a", image="busybox").canonical()
