"""The health check a service's container inherits from its image, as docker's does.

A container runs its image's ``HEALTHCHECK`` unless the run overrides it (docker's
``merge`` in moby's daemon/commit.go) or turns it off (``["NONE"]``). So a service's
*effective* check (:func:`effective`) is, in order:

1. its own ``healthcheck`` (``Healthcheck(["NONE"])``: none at all);
2. else its image's: the exact envkit form in the label ``io.envkit.healthcheck``
   (:data:`LABEL`, written by envkit builds beside docker's field) when it is present,
   valid and agrees with docker's field (a later ``docker build`` with another
   ``HEALTHCHECK`` inherits the label but not its test: the label is stale then);
3. else docker's ``Healthcheck`` image config field (:func:`from_docker`), durations in
   nanoseconds with 0 or missing meaning moby's defaults;
4. else none.

The image's config is docker's, not envkit's, so it can hold what envkit's
:class:`~envkit.spec.Healthcheck` refuses (an unknown test type, a negative duration, a
``CMD`` without a command): :func:`from_image` then gives no check and the reason, which
the supervisor says in ``up``'s output (``db: the image's health check is ignored: ...``)
instead of failing the start. Docker itself runs no probe for an unknown test type.
"""

from __future__ import annotations

import json

from envkit.errors import SpecError
from envkit.records import Value
from envkit.spec import Healthcheck

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

#: The label with the exact envkit form of an image's check (canonical JSON of
#: :meth:`Healthcheck.canonical`); the same name as ``envkit.build.executor.HEALTHCHECK_LABEL``.
LABEL = "io.envkit.healthcheck"

# moby daemon/health.go: what a 0 (unset) field of the image's Healthcheck means.
#: ``defaultProbeInterval``.
DEFAULT_INTERVAL = 30.0
#: ``defaultProbeTimeout``.
DEFAULT_TIMEOUT = 30.0
#: ``defaultStartPeriod``.
DEFAULT_START_PERIOD = 0.0
#: ``defaultStartInterval``.
DEFAULT_START_INTERVAL = 5.0
#: ``defaultProbeRetries`` (a ``Retries`` of 0 or less means it).
DEFAULT_RETRIES = 3

_NS = 1e9


class ImageCheck(Value):
    """What an image says about health checks."""

    #: Its check; ``None`` when it has none, disables it, or its check is malformed.
    check: Healthcheck | None = None
    #: Where the check came from: ``"label"`` (envkit's exact form), ``"config"``
    #: (docker's field), or ``""``.
    source: str = ""
    #: Why the image's check was ignored (malformed), or ``""``.
    problem: str = ""


def effective(own: Healthcheck | None, image: Healthcheck | None) -> Healthcheck | None:
    """The check a service's container runs: its ``own`` (``["NONE"]``: none), else its
    ``image``'s (``["NONE"]``: none), else none."""
    chosen = own if own is not None else image
    return None if chosen is None or chosen.disabled else chosen


def from_image(config: Mapping[str, object]) -> ImageCheck:
    """The check of an image whose config's ``config`` object is ``config``: the
    :data:`LABEL` form when it is valid and agrees with docker's field, else docker's
    field converted (:func:`from_docker`)."""
    docker = config.get("Healthcheck")
    labelled = _from_label(config.get("Labels"))
    if labelled is not None:
        test = docker.get("Test") if isinstance(docker, dict) else None
        if docker is None or test == list(labelled.test):
            return ImageCheck(None if labelled.disabled else labelled, "label")
    try:
        check = from_docker(docker)
    except SpecError as exc:
        problem = exc.message
        if not problem.startswith("image config"):
            problem = f"image config {problem}"
        return ImageCheck(problem=problem)
    return ImageCheck(check, "config" if check is not None else "")


def from_docker(value: object) -> Healthcheck | None:
    """Docker's ``Healthcheck`` image config field as a check; ``None`` for none (a
    missing field, an empty ``Test``, ``["NONE"]``). Durations are nanoseconds, and 0
    (or missing) means moby's default; a ``Retries`` of 0 or less means 3. Raises
    :class:`SpecError` naming the field for what docker would not run."""
    if value is None:
        return None
    where = "image config Healthcheck"
    if not isinstance(value, dict):
        raise SpecError(where, "must be an object", value=value)
    test = value.get("Test")
    if test is None or test == []:
        return None  # nothing set: no check (moby's getProbe)
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise SpecError(f"{where}.Test", "must be a list of strings", value=test)
    kind = test[0]
    if kind == "NONE":
        return None
    if kind not in ("CMD", "CMD-SHELL"):
        raise SpecError(
            f"{where}.Test", f"has unknown type {kind!r} (expected CMD, CMD-SHELL or NONE)"
        )
    retries = value.get("Retries")
    if retries is None:
        retries = 0
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise SpecError(f"{where}.Retries", "must be an integer", value=retries)
    return Healthcheck(
        test,
        interval=_seconds(value, "Interval", DEFAULT_INTERVAL),
        timeout=_seconds(value, "Timeout", DEFAULT_TIMEOUT),
        retries=retries if retries > 0 else DEFAULT_RETRIES,
        start_period=_seconds(value, "StartPeriod", DEFAULT_START_PERIOD),
        start_interval=_seconds(value, "StartInterval", DEFAULT_START_INTERVAL),
    )


def _seconds(value: Mapping[str, object], key: str, default: float) -> float:
    """Field ``key`` of docker's ``Healthcheck`` (nanoseconds) in seconds; ``default``
    for 0 or missing."""
    ns = value.get(key)
    if ns is None or ns == 0:
        return default
    if isinstance(ns, bool) or not isinstance(ns, (int, float)) or ns < 0:
        raise SpecError(
            f"image config Healthcheck.{key}", "must be a duration in nanoseconds", value=ns
        )
    return ns / _NS


def _from_label(labels: object) -> Healthcheck | None:
    """The check in the :data:`LABEL` label of ``labels``; ``None`` when it is missing
    or not a valid check (docker's field is used then)."""
    if not isinstance(labels, dict) or not isinstance(labels.get(LABEL), str):
        return None
    try:
        data = json.loads(labels[LABEL])
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kind") != "healthcheck":
        return None
    fields = ("test", "interval", "timeout", "retries", "start_period", "start_interval")
    try:
        return Healthcheck(**{k: data[k] for k in fields if k in data})
    except (SpecError, TypeError):
        return None
