"""Default time limits of stacks (a module of their own: importing them loads nothing)."""

#: Seconds a service gets between SIGTERM and SIGKILL when the stack stops.
STOP_GRACE = 10.0
#: Default limit for ``up`` to get every service started and ready.
UP_TIMEOUT = 300.0
