"""envkit.network.netops (pyroute2) against the kernel, in a throwaway user + network
namespace: bridges, veth pairs into another namespace, both families, and errors in the
kernel's own words naming the object."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from envkit.errors import NetworkError
from envkit.host import syscalls

netops = pytest.importorskip("envkit.network.netops")


def in_new_netns(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a forked child that unshared a user and a network namespace."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        try:
            syscalls.unshare(syscalls.CLONE_NEWUSER | syscalls.CLONE_NEWNET)
            payload = {"ok": fn()}
        except BaseException as exc:
            payload = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(w, json.dumps(payload).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        answer = json.loads(f.read())
    os.waitpid(pid, 0)
    assert "ok" in answer, answer["error"]
    return answer["ok"]


def _holder_and_container() -> dict[str, Any]:
    # The "holder" is this namespace; the "container" a second one made by a child.
    holder = netops.Holder(os.open(f"/proc/{os.getpid()}/ns/net", os.O_RDONLY))
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the container: a network namespace, waiting
        os.close(done_w)
        syscalls.unshare(syscalls.CLONE_NEWNET)
        os.write(ready_w, b"x")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
    container = os.open(f"/proc/{child}/ns/net", os.O_RDONLY)
    bridge = {
        "name": "ek-test",
        "gateway": "10.9.0.1",
        "prefixlen": 24,
        "gateway6": "fd00:9::1",
        "prefixlen6": 64,
    }
    holder.setup([bridge])
    holder.bridge(**bridge)  # idempotent
    spec = {
        "bridge": "ek-test",
        "bridge_spec": bridge,
        "veth": "vek-test",
        "ifname": "eth0",
        "address": "10.9.0.2",
        "prefixlen": 24,
        "gateway": "10.9.0.1",
        "address6": "fd00:9::2",
        "prefixlen6": 64,
        "gateway6": "fd00:9::1",
        "default": True,
    }
    holder.attach(container, spec)
    links = sorted(holder.link_names())

    def inside() -> dict[str, Any]:
        with netops._route() as ip:
            index = netops._index(ip, "eth0")
            addresses = sorted(a.get("IFA_ADDRESS") for a in ip.get_addr(index=index))
            routes = [
                (r.get("RTA_GATEWAY"), r["family"])
                for r in ip.get_routes()
                if r.get("RTA_GATEWAY") is not None
            ]
        return {"addresses": addresses, "routes": sorted(routes)}

    seen = netops.in_netns(container, inside)
    errors = []
    bad = {**spec, "address": "10.9.0.3", "prefixlen": 33, "ifname": "eth1", "veth": "vek-2"}
    try:
        holder.attach(container, bad)
    except NetworkError as exc:
        errors.append(exc.message)
    try:
        holder.bridge(name="ek-test", gateway="10.9.0.1", prefixlen=33)
    except NetworkError as exc:
        errors.append(exc.message)
    holder.remove_link("vek-test")
    holder.remove_link("vek-test")  # gone already: no-op
    after = sorted(holder.link_names())
    os.close(done_w)
    os.waitpid(child, 0)
    return {"links": links, "seen": seen, "errors": errors, "after": after}


def test_bridge_veth_addresses_routes_and_kernel_errors() -> None:
    found = in_new_netns(_holder_and_container)
    assert "ek-test" in found["links"] and "vek-test" in found["links"]
    assert "vek-test" not in found["after"]
    assert found["seen"]["addresses"][:2] == ["10.9.0.2", "fd00:9::2"]
    assert ["10.9.0.1", 2] in found["seen"]["routes"]
    assert ["fd00:9::1", 10] in found["seen"]["routes"]
    # The kernel's own words (extended ACK), the object named.
    attach_error, bridge_error = found["errors"]
    assert "interface eth1 of the container" in attach_error
    assert "Invalid prefix length" in attach_error
    assert "bridge ek-test" in bridge_error and "Invalid prefix length" in bridge_error


def test_kernel_error_carries_the_message_and_errno() -> None:
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    text = netops.kernel_error("creating bridge ek-x", NetlinkError(17, "File exists")).message
    assert text == "creating bridge ek-x: File exists (errno 17)"
    plain = netops.kernel_error("deleting link v", NetlinkError(19)).message
    assert plain == f"deleting link v: {os.strerror(19)} (errno 19)"


def test_the_netlink_worker_loads_pyroute2_without_its_package_init() -> None:
    """The netlink worker skips pyroute2's re-exporting ``__init__`` (NDB, IPDB,
    conntrack...): what netops uses still works."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from envkit.network import netlink_worker\n"
        "netlink_worker.load_pyroute2_lightly()\n"
        "from envkit.network import netops\n"
        "with netops._route() as ip:\n"
        "    assert ip.link_lookup(ifname='lo')\n"
        "print(sorted(m for m in ('pyroute2.ndb.main', 'pyroute2.ipdb', 'pyroute2.conntrack')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
