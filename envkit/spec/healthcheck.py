"""``Healthcheck``: how to tell that a container is ready."""

from __future__ import annotations

from collections.abc import Sequence

from envkit.errors import SpecError
from envkit.records import Frozen
from envkit.spec import validate
from envkit.spec.canonical import SpecObject, versioned

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Any, Never

_FORMS = ("CMD", "CMD-SHELL", "NONE")

#: Docker's interval between runs during the start period when none is given
#: (moby daemon/health.go ``defaultStartInterval``).
DEFAULT_START_INTERVAL = 5.0


class Healthcheck(Frozen, SpecObject):
    """A command run in the container; exit code 0 means healthy.

    ``test`` is a list (exec form, run without a shell) or a string (run by ``/bin/sh -c``).
    It is stored in docker's form: ``("CMD", prog, *args)`` or ``("CMD-SHELL", script)``;
    a list that already starts with ``"CMD"``/``"CMD-SHELL"`` is kept, and ``["NONE"]``
    disables a check inherited from the base image.

    The check runs at once when the container starts, then every ``interval`` seconds;
    a run longer than ``timeout`` fails; ``retries`` failures in a row make the container
    unhealthy. Failures during ``start_period`` do not count, and while the container is
    still ``starting`` within ``start_period`` the runs come every ``start_interval``
    seconds instead (docker's ``--start-interval``, default 5 s: it has no effect without a
    ``start_period``). So a server can be checked often until it is up, and rarely after.
    """

    test: tuple[str, ...]
    interval: float
    timeout: float
    retries: int
    start_period: float
    start_interval: float

    def __init__(
        self,
        test: Sequence[str] | str,
        interval: float = 30.0,
        timeout: float = 30.0,
        retries: int = 3,
        start_period: float = 0.0,
        start_interval: float = DEFAULT_START_INTERVAL,
        **unknown: Never,
    ) -> None:
        validate.reject_unknown("Healthcheck", unknown, Healthcheck.__init__)
        field = "Healthcheck.test"
        if isinstance(test, str):
            form: tuple[str, ...] = ("CMD-SHELL", validate.string(field, test))
        else:
            form = validate.argv(field, test)
            if form[0] not in _FORMS:
                form = ("CMD", *form)
            if form[0] == "NONE" and len(form) > 1:
                raise SpecError(field, '["NONE"] takes no command', value=list(test))
            if form[0] != "NONE" and len(form) < 2:
                raise SpecError(field, "has no command", value=list(test))
            if form[0] == "CMD-SHELL" and len(form) != 2:
                raise SpecError(
                    field,
                    "CMD-SHELL takes exactly one shell script",
                    value=list(test),
                    hint='pass the script as one string: Healthcheck("pg_isready -q")',
                )
        set_ = object.__setattr__
        set_(self, "test", form)
        set_(self, "interval", validate.number("Healthcheck.interval", interval))
        set_(self, "timeout", validate.number("Healthcheck.timeout", timeout))
        set_(self, "retries", validate.count("Healthcheck.retries", retries))
        set_(
            self,
            "start_period",
            validate.number("Healthcheck.start_period", start_period, positive=False),
        )
        set_(
            self,
            "start_interval",
            validate.number("Healthcheck.start_interval", start_interval),
        )

    @property
    def disabled(self) -> bool:
        """Whether this check turns an inherited one off (``["NONE"]``)."""
        return self.test == ("NONE",)

    @property
    def start_interval_set(self) -> bool:
        """Whether ``start_interval`` is not docker's default (an image config and a
        Dockerfile line then name it; docker omits an unset one)."""
        return self.start_interval != DEFAULT_START_INTERVAL

    def canonical(self) -> dict[str, Any]:
        """Test in docker's form; durations in seconds. ``start_interval`` only when it is
        not docker's default, so the form (and cache key) of a check without one stays
        what it was before the field existed."""
        return versioned(
            "healthcheck",
            {
                "test": list(self.test),
                "interval": self.interval,
                "timeout": self.timeout,
                "retries": self.retries,
                "start_period": self.start_period,
                **({"start_interval": self.start_interval} if self.start_interval_set else {}),
            },
        )
