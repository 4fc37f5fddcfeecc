"""The former home of the container layer, now the package :mod:`envkit.container`;
these names stay importable from here until every importer moved."""

from envkit.container.execute import start_exec
from envkit.container.handle import (
    Container,
    ExecResult,
    adopt_orphans,
    get,
    list_containers,
    reap,
)
from envkit.container.options import RunOptions
from envkit.container.prepare import Prepared, _resolve_pulling, prepare
from envkit.container.start import run, run_foreground, start_detached
from envkit.runtime.state import remove_dir as remove_state

__all__ = [
    "Container",
    "ExecResult",
    "Prepared",
    "RunOptions",
    "_resolve_pulling",
    "adopt_orphans",
    "get",
    "list_containers",
    "prepare",
    "reap",
    "remove_state",
    "run",
    "run_foreground",
    "start_detached",
    "start_exec",
]
