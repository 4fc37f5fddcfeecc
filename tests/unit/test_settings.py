"""Settings: the environment first, then $ENVKIT_HOME/config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit import settings
from envkit.errors import EnvkitError


def test_file_value_used_and_environment_wins(
    envkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (envkit_home / "config.toml").write_text(
        'insecure_registries = ["reg.test:5000", "other:1"]\nregistry_mirrors = "docker.io=m:1"\n'
    )
    monkeypatch.delenv("ENVKIT_INSECURE_REGISTRIES", raising=False)
    monkeypatch.delenv("ENVKIT_REGISTRY_MIRRORS", raising=False)
    assert settings.get("insecure_registries") == "reg.test:5000,other:1"
    assert settings.get("registry_mirrors") == "docker.io=m:1"
    monkeypatch.setenv("ENVKIT_REGISTRY_MIRRORS", "docker.io=env:2")
    assert settings.get("registry_mirrors") == "docker.io=env:2"
    assert settings.get("absent", "dflt") == "dflt"


def test_bad_toml_names_the_file(envkit_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVKIT_REGISTRY_MIRRORS", raising=False)
    (envkit_home / "config.toml").write_text("registry_mirrors = [unclosed\n")
    with pytest.raises(EnvkitError, match=r"config\.toml: not valid TOML") as info:
        settings.get("registry_mirrors")
    assert info.value.hint == "fix the file or remove it"


def test_home_defaults_under_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ENVKIT_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert settings.home() == tmp_path / "envkit"
    assert settings.store_root() == tmp_path / "envkit" / "store"
