"""``--ulimit`` and compose's ``ulimits``: docker's parsing (go-units' ParseUlimit table)
and the spec's forms."""

from __future__ import annotations

import pytest

from envkit import Service
from envkit.errors import SpecError
from envkit.spec import ulimits

# (flag, limit or None when refused): go-units' TestParseUlimit* cases
FLAGS = [
    ("nofile=512:1024", ("nofile", 512, 1024)),
    ("nofile=1024", ("nofile", 1024, 1024)),
    ("core=-1", ("core", -1, -1)),
    ("core=0:-1", ("core", 0, -1)),
    ("notavalidtype=1024:1024", None),
    ("nofile=1024:512", None),  # soft above hard
    ("nofile=1024:notanumber", None),
    ("nofile=notanumber:1024", None),
    ("nofile", None),
    ("nofile=", None),
    ("nofile=-2", None),
    ("nofile=-1:1024", None),  # an unlimited soft limit above a finite hard one
]


@pytest.mark.parametrize(("flag", "expected"), FLAGS)
def test_ulimit_flags_as_docker_parses_them(
    flag: str, expected: tuple[str, int, int] | None
) -> None:
    if expected is None:
        with pytest.raises(SpecError):
            ulimits.parse_flag(flag)
    else:
        assert ulimits.parse_flag(flag) == expected


def test_a_service_takes_a_number_a_pair_or_compose_mapping() -> None:
    web = Service(
        "web",
        image="busybox",
        ulimits={"nproc": 65535, "nofile": {"soft": 20000, "hard": 40000}, "core": (0, -1)},
    )
    assert web.ulimits == (("core", 0, -1), ("nofile", 20000, 40000), ("nproc", 65535, 65535))
    assert web.canonical()["ulimits"][0] == ["core", 0, -1]
    assert "ulimits" not in Service("web", image="busybox").canonical()


@pytest.mark.parametrize(
    "value", [{"nofiles": 1}, {"nofile": {"soft": 1}}, {"nofile": (1, 2, 3)}, ["nofile=1"]]
)
def test_bad_service_ulimits_name_the_field(value: object) -> None:
    with pytest.raises(SpecError) as caught:
        Service("web", image="busybox", ulimits=value)  # type: ignore[arg-type]
    assert caught.value.field.startswith("Service('web').ulimits")
