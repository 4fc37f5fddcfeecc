"""Restart policies (docker's): when an exited service container is started again.

``no`` never; ``always`` after any exit; ``on-failure[:N]`` after a non-zero exit, at most
N times; ``unless-stopped`` as ``always``, except that a service the user stopped stays
stopped when a new supervisor re-adopts the stack (docker's daemon restart), where an
``always`` one is started again. A container stopped by ``down``, ``stop`` or Ctrl-C is
not restarted by the supervisor that stopped it. Restarts wait an exponential backoff
(docker's: 100 ms doubling, at most one minute), reset once a container ran
:data:`STABLE_AFTER` seconds. :class:`RestartManager` is docker's restart manager
(moby ``restartmanager``) for one service.
"""

from __future__ import annotations

from envkit.records import Value

#: A container that ran this long before exiting starts a new backoff sequence.
STABLE_AFTER = 10.0
FIRST_DELAY = 0.1
MAX_DELAY = 60.0


class RestartPolicy(Value):
    """A parsed ``Service.restart`` value (the spec validated its form)."""

    mode: str
    max_retries: int = 0  #: 0: no limit (``on-failure`` only)

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """``"no"``, ``"always"``, ``"unless-stopped"``, ``"on-failure"``, ``"on-failure:N"``."""
        mode, _, count = text.partition(":")
        return cls(mode, int(count) if count else 0)

    def should_restart(self, exit_code: int, restarts: int) -> bool:
        """Whether a container that exited with ``exit_code`` after ``restarts`` restarts
        of its service starts again."""
        if self.mode in ("always", "unless-stopped"):
            return True
        if self.mode == "on-failure" and exit_code != 0:
            return self.max_retries == 0 or restarts < self.max_retries
        return False


def backoff(failures_in_a_row: int) -> float:
    """Seconds to wait before restart number ``failures_in_a_row`` (0-based) of a
    sequence of quick exits."""
    return float(min(FIRST_DELAY * (2**failures_in_a_row), MAX_DELAY))


class RestartManager:
    """Docker's restart decisions for one service, its backoff and restart count.

    As moby's ``restartmanager.ShouldRestart``: every exit first moves the backoff (to
    100 ms after a run of :data:`STABLE_AFTER` seconds or more, else doubled, at most
    :data:`MAX_DELAY`), then the policy decides; a decided restart counts towards
    ``on-failure:N``. A manual start (``start``, ``restart``) calls :meth:`reset`, as
    ``docker start`` resets the count.
    """

    def __init__(self, policy: RestartPolicy, count: int = 0) -> None:
        self.policy = policy
        #: Restarts decided since the last manual start (docker's ``RestartCount``).
        self.count = count
        #: The current backoff (0: none yet).
        self.delay = 0.0

    def on_exit(
        self, exit_code: int | None, ran_for: float, manually_stopped: bool = False
    ) -> float | None:
        """The delay before restarting a container that exited with ``exit_code``
        (``None``: unknown, its supervisor was lost; counts as a failure) after
        ``ran_for`` seconds, or ``None`` for no restart. ``manually_stopped``: the user
        stopped it (only ``unless-stopped`` cares, at a re-adoption)."""
        if self.policy.mode == "no":
            return None
        if ran_for >= STABLE_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0 else min(self.delay * 2, MAX_DELAY)
        mode, limit = self.policy.mode, self.policy.max_retries
        if mode == "always":
            restart = True
        elif mode == "unless-stopped":
            restart = not manually_stopped
        elif mode == "on-failure":
            restart = (limit == 0 or self.count < limit) and exit_code != 0
        else:
            restart = False
        if not restart:
            return None
        self.count += 1
        return self.delay

    def reset(self) -> None:
        """A manual start: count and backoff start again."""
        self.count, self.delay = 0, 0.0
