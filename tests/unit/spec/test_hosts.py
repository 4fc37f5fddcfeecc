"""``--add-host`` / compose's ``extra_hosts``: docker's and compose's forms."""

from __future__ import annotations

import pytest

from envkit import Service
from envkit.errors import SpecError
from envkit.spec import hosts

# (given, parsed or None when refused)
FORMS: list[tuple[object, tuple[tuple[str, str], ...] | None]] = [
    (["somehost:162.242.195.82"], (("somehost", "162.242.195.82"),)),
    (["otherhost=50.31.209.229"], (("otherhost", "50.31.209.229"),)),  # compose's form
    (["v6host:::1"], (("v6host", "::1"),)),  # the first ':' splits, as docker's
    (["v6host=[::1]"], (("v6host", "::1"),)),
    (["host.docker.internal:host-gateway"], (("host.docker.internal", "host-gateway"),)),
    ({"db": "10.0.0.5"}, (("db", "10.0.0.5"),)),
    (["a:10.0.0.2", "a:10.0.0.1"], (("a", "10.0.0.1"), ("a", "10.0.0.2"))),
    (["nohost"], None),
    (["bad name:10.0.0.1"], None),
    (["db:not-an-ip"], None),
    ("db:10.0.0.1", None),  # a string, not a list
]


@pytest.mark.parametrize(("given", "parsed"), FORMS)
def test_extra_hosts_forms(given: object, parsed: tuple[tuple[str, str], ...] | None) -> None:
    if parsed is None:
        with pytest.raises(SpecError):
            hosts.parse("extra_hosts", given)
    else:
        assert hosts.parse("extra_hosts", given) == parsed


def test_a_service_keeps_them_sorted_and_in_its_canonical_form_only_when_set() -> None:
    web = Service("web", image="busybox", extra_hosts=["b:10.0.0.2", "a:10.0.0.1"])
    assert web.extra_hosts == (("a", "10.0.0.1"), ("b", "10.0.0.2"))
    assert web.canonical()["extra_hosts"] == [["a", "10.0.0.1"], ["b", "10.0.0.2"]]
    assert "extra_hosts" not in Service("web", image="busybox").canonical()
