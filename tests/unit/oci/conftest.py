"""Fixtures of the oci package's unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store of this test's own."""
    return Store(tmp_path / "store")
