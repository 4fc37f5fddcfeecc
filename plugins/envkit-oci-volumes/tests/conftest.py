"""A real registry for the plugin's tests: Debian's docker-registry on 127.0.0.1.

The server helper is envkit's own (tests/integration/registry_server.py of the envkit
repository this package lives in), loaded by path; set ENVKIT_REPO when the package is
tested from elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(os.environ.get("ENVKIT_REPO", Path(__file__).resolve().parents[3]))


def _server_module() -> ModuleType:
    path = REPO / "tests" / "integration" / "registry_server.py"
    if not path.is_file():
        pytest.skip(f"{path} missing: set ENVKIT_REPO to envkit's repository")
    spec = importlib.util.spec_from_file_location("envkit_registry_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A plain-HTTP registry on 127.0.0.1 for the whole session."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry missing: apt-get install docker-registry")
    server = _server_module().RegistryServer(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$ENVKIT_HOME`` (one "machine")."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("ENVKIT_HOME", str(path))
    return path
