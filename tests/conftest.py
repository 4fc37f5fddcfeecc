"""Fixtures shared by every test suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def envkit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty ``$ENVKIT_HOME`` for one test."""
    home = tmp_path / "envkit-home"
    home.mkdir()
    monkeypatch.setenv("ENVKIT_HOME", str(home))
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    yield home
