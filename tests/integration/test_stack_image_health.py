"""A service without a health check of its own runs its image's, as a docker container
inherits its image's ``HEALTHCHECK`` (real runtime): it becomes healthy, a service that
``depends_on`` it being healthy waits for that, ``Healthcheck(["NONE"])`` turns it off,
and a ``healthy`` dependency whose image has no check fails ``up`` at once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from envkit import Healthcheck, Image, Service, Stack
from envkit.errors import DependencyError, SpecError
from envkit.stack import image_health
from envkit.stack import state as ss
from envkit.stack.launcher import image_settings
from tests.integration import test_stack
from tests.integration.test_stack import BUSYBOX, leftovers

# test_stack's fixtures: a home with the test busybox loaded, checked for leftovers.
loaded_home = test_stack.loaded_home
home = test_stack.home

pytestmark = pytest.mark.rootless

CHECK = Healthcheck(["test", "-f", "/tmp/ready"], interval=0.1, retries=100)
#: Ready 0.5 s after its start.
SLOW_START = ["sh", "-c", "sleep 0.5; touch /tmp/ready; exec sleep 600"]


def _db(image: Image, **extra: object) -> Service:
    return Service("db", init=True, image=image, command=SLOW_START, **extra)  # type: ignore[arg-type]


def _app(db: Service) -> Service:
    return Service(
        "app", init=True, image=BUSYBOX, command=["sleep", "600"], depends_on={db: "healthy"}
    )


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(
    ("image", "source"),
    [
        (Image.from_(BUSYBOX).healthcheck(CHECK), "label"),  # envkit's label and docker's field
        # docker's field alone (as `docker build` or a registry image has it): an empty
        # envkit label is not a check, so the field is read
        (
            Image.from_(BUSYBOX).healthcheck(CHECK).label(**{"io.envkit.healthcheck": ""}),
            "config",
        ),
    ],
    ids=["envkit-label", "docker-field"],
)
def test_the_images_check_makes_it_healthy_and_gates_its_dependent(
    home: Path, image: Image, source: str
) -> None:
    db = _db(image)
    stack = Stack("inherit", services=[_app(db), db])
    with stack.up() as running:
        assert running["db"].health == "healthy"
        assert running["app"].status == "running"
        record = ss.require("inherit").services
        found = image_health.from_image(image_settings(record["db"].image_id))
        assert found.source == source and found.check == CHECK
        # app started once db was healthy, which takes db 0.5 s
        assert _seconds(record["app"].started_at) - _seconds(record["db"].started_at) >= 0.45
    assert leftovers(home) == []


def test_none_turns_the_images_check_off(home: Path) -> None:
    image = Image.from_(BUSYBOX).healthcheck(CHECK)
    off = _db(image, healthcheck=Healthcheck(["NONE"]))
    with Stack("off", services=[off]).up() as running:
        assert running["db"].status == "running"
        assert running["db"].health == ""  # no check runs
    with pytest.raises(SpecError, match="health check disabled"):
        Stack("off", services=[_app(off), off]).up()
    assert leftovers(home) == []


def test_a_healthy_dependency_with_no_check_anywhere_fails_up(home: Path) -> None:
    db = _db(Image.from_(BUSYBOX))  # the image has no HEALTHCHECK
    with pytest.raises(DependencyError) as caught:
        Stack("nocheck", services=[_app(db), db]).up()
    assert "container nocheck-db-1 has no healthcheck configured" in caught.value.message
    assert caught.value.exit_code == 2
    assert leftovers(home) == []
