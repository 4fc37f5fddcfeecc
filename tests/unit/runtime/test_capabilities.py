"""Capability sets from docker's --cap-add/--cap-drop, and Service's cap_add/cap_drop."""

from __future__ import annotations

import json

import pytest

from envkit import Service
from envkit.errors import SpecError
from envkit.runtime import caps


def test_resolve_follows_docker() -> None:
    assert caps.resolve() == caps.DEFAULT
    assert caps.resolve(["net_admin"]) == caps.DEFAULT | {caps.CAP["NET_ADMIN"]}
    assert caps.resolve([], ["CAP_CHOWN"]) == caps.DEFAULT - {caps.CAP["CHOWN"]}
    assert caps.resolve([], ["ALL"]) == frozenset()
    # Drops first, then adds, as docker applies them.
    assert caps.resolve(["KILL"], ["ALL"]) == {caps.CAP["KILL"]}
    assert caps.resolve(["ALL"]) == frozenset(caps.CAP.values())


def test_unknown_capability() -> None:
    with pytest.raises(SpecError, match="unknown capability"):
        caps.resolve(["NOT_A_CAP"])


def test_seccomp_caps_is_none_for_the_default_set() -> None:
    assert caps.seccomp_caps(None) is None
    assert caps.seccomp_caps(caps.DEFAULT) is None
    added = caps.seccomp_caps(caps.DEFAULT | {caps.CAP["SYS_PTRACE"]})
    assert added is not None and "CAP_SYS_PTRACE" in added


def test_service_capabilities_are_normalised_and_part_of_the_cache_key() -> None:
    plain = Service("s", image="busybox:1")
    more = Service("s", image="busybox:1", cap_add=["net_admin", "CAP_SYS_PTRACE"])
    assert more.cap_add == ("CAP_NET_ADMIN", "CAP_SYS_PTRACE")
    # Only when set: the canonical form (and cache key) of every other service is unchanged.
    assert "cap_add" not in json.dumps(plain.canonical())
    assert plain.canonical() != more.canonical()
    assert Service("s", image="busybox:1", cap_drop=["all"]).cap_drop == ("ALL",)


@pytest.mark.parametrize("bad", ["net admin", "1CAP", ""])
def test_service_rejects_what_is_not_a_capability_name(bad: str) -> None:
    with pytest.raises(SpecError, match="cap_add"):
        Service("s", image="busybox:1", cap_add=[bad])
