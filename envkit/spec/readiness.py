"""``Ready``: a one-shot readiness probe of a service (TCP port open, HTTP status, a log
line, a command), the model shared by ``depends_on`` and by users' tests.

A :class:`~envkit.spec.Healthcheck` keeps running for the life of a container; a
``Ready`` probe is tried every ``interval`` seconds from the container's start until it
passes once, and fails the service when ``timeout`` seconds pass first::

    db = Service("db", image=..., ready=Ready.tcp(5432))
    web = Service("web", image=..., ready=[Ready.log(r"listening on"), Ready.http("/", 8000)])

A service is *ready* once its health check (if any) is healthy and every one of its
``ready`` probes passed; ``depends_on={db: "healthy"}`` waits for that, and so does
``running["db"].wait_ready()``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from envkit.errors import SpecError
from envkit.records import Value
from envkit.spec import validate
from envkit.spec.canonical import SpecObject, versioned

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from typing import Self

Kind = Literal["tcp", "http", "log", "command"]

#: Seconds a probe may take to pass, counted from the container's start.
DEFAULT_TIMEOUT = 120.0
#: Seconds between two tries of a probe.
DEFAULT_INTERVAL = 0.1


class Ready(Value, SpecObject):
    """A readiness probe; build one with :meth:`tcp`, :meth:`http`, :meth:`log` or
    :meth:`command` (the constructor is their common form)."""

    kind: Kind
    port: int | None = None
    path: str | None = None
    status: int | None = None
    pattern: str | None = None
    argv: tuple[str, ...] | None = None
    timeout: float = DEFAULT_TIMEOUT
    interval: float = DEFAULT_INTERVAL

    def __post_init__(self) -> None:
        field = f"Ready.{self.kind}"
        validate.choice("Ready.kind", self.kind, ("tcp", "http", "log", "command"))
        # Stored as floats so that 60 and 60.0 give one canonical form.
        object.__setattr__(self, "timeout", validate.number(f"{field}.timeout", self.timeout))
        object.__setattr__(self, "interval", validate.number(f"{field}.interval", self.interval))
        if self.kind in ("tcp", "http"):
            validate.port(f"{field}.port", self.port)
        if self.kind == "http":
            path = validate.string(f"{field}.path", self.path)
            if not path.startswith("/"):
                raise SpecError(f"{field}.path", "must start with '/'", value=path)
            if not isinstance(self.status, int) or not 100 <= self.status <= 599:
                raise SpecError(f"{field}.status", "expected an HTTP status", value=self.status)
        if self.kind == "log":
            try:
                re.compile(validate.string(f"{field}.pattern", self.pattern))
            except re.error as exc:
                raise SpecError(
                    f"{field}.pattern", f"not a regular expression: {exc}", value=self.pattern
                ) from None
        if self.kind == "command":
            validate.argv(f"{field}.argv", self.argv)

    @classmethod
    def tcp(
        cls, port: int, *, timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL
    ) -> Self:
        """Ready once something listens on TCP ``port`` in the container's network."""
        return cls("tcp", port=port, timeout=timeout, interval=interval)

    @classmethod
    def http(
        cls,
        path: str,
        port: int,
        status: int = 200,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        interval: float = DEFAULT_INTERVAL,
    ) -> Self:
        """Ready once ``GET path`` on ``port`` (inside the container's network) answers
        ``status``."""
        return cls("http", port=port, path=path, status=status, timeout=timeout, interval=interval)

    @classmethod
    def log(
        cls, regex: str, *, timeout: float = DEFAULT_TIMEOUT, interval: float = DEFAULT_INTERVAL
    ) -> Self:
        """Ready once a line the container wrote (stdout or stderr) matches ``regex``."""
        return cls("log", pattern=regex, timeout=timeout, interval=interval)

    @classmethod
    def command(
        cls,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        interval: float = DEFAULT_INTERVAL,
    ) -> Self:
        """Ready once ``argv`` run in the container (as ``exec``) exits 0."""
        checked = validate.argv("Ready.command.argv", argv)
        return cls("command", argv=checked, timeout=timeout, interval=interval)

    def describe(self) -> str:
        """A short human form: ``tcp 5432``, ``http GET / on 8000 -> 200``, ..."""
        if self.kind == "tcp":
            return f"tcp port {self.port} open"
        if self.kind == "http":
            return f"http GET {self.path} on port {self.port} answers {self.status}"
        if self.kind == "log":
            return f"a log line matches {self.pattern!r}"
        return f"command {' '.join(self.argv or ())!r} exits 0"

    def canonical(self) -> dict[str, Any]:
        """Kind, its parameters and the timings."""
        body: dict[str, Any] = {"type": self.kind}
        for key in ("port", "path", "status", "pattern"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        if self.argv is not None:
            body["argv"] = list(self.argv)
        body.update(timeout=self.timeout, interval=self.interval)
        return versioned("ready", body)


def ready_list(field: str, value: object) -> tuple[Ready, ...]:
    """``None``, one :class:`Ready` or a list of them, as a tuple in the given order."""
    if value is None:
        return ()
    items = [value] if isinstance(value, Ready) else value
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise SpecError(
            field, "expected a Ready or a list of Ready", value=value, hint="ready=Ready.tcp(5432)"
        )
    for item in items:
        if not isinstance(item, Ready):
            raise SpecError(
                field,
                f"expected a Ready, not {type(item).__name__}",
                value=item,
                hint="ready=Ready.tcp(5432), Ready.http('/', 8000) or Ready.log(r'ready')",
            )
    return tuple(items)
