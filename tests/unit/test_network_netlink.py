"""envkit.network.netlink against the kernel, in a throwaway user + network namespace."""

from __future__ import annotations

import errno
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envkit.host import syscalls
from envkit.network import links, netlink


def in_new_netns(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a forked child that unshared a user, mount and network namespace, with
    a sysfs of that network namespace on /sys."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        try:
            syscalls.unshare(syscalls.CLONE_NEWUSER | syscalls.CLONE_NEWNS | syscalls.CLONE_NEWNET)
            syscalls.mount("none", "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
            syscalls.mount("sysfs", "/sys", "sysfs", 0)
            payload: tuple[bool, Any] = (True, fn())
        except BaseException as exc:
            payload = (False, repr(exc))
        os.write(w, pickle.dumps(payload))
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        ok, value = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert ok, value
    return value


def test_attributes_are_padded_to_four_bytes() -> None:
    packed = netlink.attr(netlink.IFLA_IFNAME, b"eth0\0")
    assert packed == struct.pack("=HH", 9, netlink.IFLA_IFNAME) + b"eth0\0" + b"\0\0\0"


def _bridge_and_veth() -> dict[str, Any]:
    netns = os.open("/proc/self/ns/net", os.O_RDONLY)
    with netlink.Route() as ip:
        ip.set_link(links._index("lo"), up=True)
    links.ensure_bridge("br-test", "10.9.0.1", 24)
    links.ensure_bridge("br-test", "10.9.0.1", 24)  # idempotent
    with netlink.Route() as ip:
        ip.add_veth("vtest0", "vtest1", netns)
        ip.set_link(links._index("vtest0"), up=True, master=links._index("br-test"))
        ip.add_address(links._index("vtest1"), "10.9.0.2", 24)
        ip.set_link(links._index("vtest1"), up=True)
        ip.replace_default_route("10.9.0.1")
        try:
            ip.add_bridge("br-test")
            clash = 0
        except OSError as exc:
            clash = exc.errno or 0
    master = Path("/sys/class/net/vtest0/master").resolve().name
    routes = Path("/proc/net/route").read_text()
    names = set(links.link_names())
    links.remove_link("vtest0")
    links.remove_link("vtest0")  # gone already: no-op
    return {
        "names": names,
        "master": master,
        "default_via_gateway": any(
            line.split()[1] == "00000000" and line.split()[2] == "0100090A"
            for line in routes.splitlines()[1:]
        ),
        "clash": clash,
        "after": set(links.link_names()),
    }


def test_bridge_veth_address_and_route_in_a_new_namespace() -> None:
    try:
        found = in_new_netns(_bridge_and_veth)
    except AssertionError as exc:
        if "EPERM" in str(exc) or "Operation not permitted" in str(exc):
            pytest.skip("user namespaces are not available here")
        raise
    assert {"lo", "br-test", "vtest0", "vtest1"} <= found["names"]
    assert found["master"] == "br-test"
    assert found["default_via_gateway"]
    assert found["clash"] == errno.EEXIST
    assert "vtest0" not in found["after"] and "vtest1" not in found["after"]
    assert "br-test" in found["after"]


def _refused() -> str:
    with netlink.Route() as ip:
        try:
            ip.delete_link(999_999)
        except OSError as exc:
            return f"{exc.errno} {exc.strerror}"
    return "no error"


def test_a_refused_request_names_itself() -> None:
    message = in_new_netns(_refused)
    assert message.startswith(f"{errno.ENODEV} deleting link 999999")
