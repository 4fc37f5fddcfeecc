"""The health check of the recipes' servers: often while the server starts, rarely once
it is up.

Each run is an exec into the container (10-15 ms of CPU for ``pg_isready``), so a check
every 20 ms for a server's whole life costs a test session a good part of a core. With
docker's start interval the check runs every ``START_INTERVAL`` seconds until the first
success (found ready within 20 ms of being ready), then every ``SETTLED_INTERVAL``
seconds. ``START_PERIOD`` bounds the fast phase, and failures in it do not count: a
server that never answers is unhealthy after ``START_PERIOD`` plus ``RETRIES`` runs at
the settled interval; one that crashes is seen at once (its container exits).
"""

from __future__ import annotations

from collections.abc import Sequence

from envkit.spec import Healthcheck

#: Seconds between runs while the server starts (until its first success).
START_INTERVAL = 0.02
#: Seconds a server gets to start before failures count (a cold Debian or registry
#: image start takes 0.3-5 s; 60 s is generous on a loaded CI machine).
START_PERIOD = 60.0
#: Seconds between runs once the server was healthy.
SETTLED_INTERVAL = 5.0
#: Failures in a row (after the start period) that make the server unhealthy.
RETRIES = 3


def server_check(test: Sequence[str], *, start_interval: float = START_INTERVAL) -> Healthcheck:
    """A check running ``test`` (exec form) on the schedule above."""
    return Healthcheck(
        list(test),
        interval=SETTLED_INTERVAL,
        timeout=5,
        retries=RETRIES,
        start_period=START_PERIOD,
        start_interval=start_interval,
    )
