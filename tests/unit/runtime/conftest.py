"""Fixtures of the runtime's unit tests: a fake kernel, a scratch working directory
(the private tmpfs the intermediate mounts), signal dispositions put back."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.runtime import init
from tests.unit.runtime.fake_kernel import FakeKernel
from tests.unit.runtime.reference_tables import PROC_ENTRIES, SYS_ENTRIES


@pytest.fixture
def kernel() -> FakeKernel:
    """A recording kernel whose procfs and sysfs hold the paths Docker masks."""
    return FakeKernel(contents={"proc": PROC_ENTRIES, "sysfs": SYS_ENTRIES})


@pytest.fixture
def pid1_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, as the intermediate's private tmpfs is for pid 1."""
    work = tmp_path / "state"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def err_pipe() -> Iterator[tuple[int, int]]:
    """A start's (or exec's) error pipe: (read end, write end)."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    """One extracted layer, plus an upper and a work dir beside it."""
    for name in ("layer", "upper", "work"):
        (tmp_path / name).mkdir()
    return tmp_path / "layer"


@pytest.fixture(autouse=True)
def _signals_restored() -> Iterator[None]:
    # init.exec_command resets ignored signals (Python ignores SIGPIPE and SIGXFSZ) for
    # the command, the exec helper ignores those it forwards: give them back to the
    # test process.
    signals = {signal.SIGPIPE, signal.SIGXFSZ, *init.FORWARDED}
    saved = {sig: signal.getsignal(sig) for sig in signals}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
