"""Restart policies (docker's): when an exited service container is started again.

``no`` never; ``always`` after any exit; ``on-failure[:N]`` after a non-zero exit, at most
N times; ``unless-stopped`` as ``always`` (the difference, a stop by the user surviving a
daemon restart, has no daemon to survive here). A container stopped by ``down`` or by
Ctrl-C is never restarted. Restarts wait an exponential backoff (docker's: 100 ms
doubling, at most one minute), reset once a container ran :data:`STABLE_AFTER` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A container that ran this long before exiting starts a new backoff sequence.
STABLE_AFTER = 10.0
FIRST_DELAY = 0.1
MAX_DELAY = 60.0


@dataclass(frozen=True)
class RestartPolicy:
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
