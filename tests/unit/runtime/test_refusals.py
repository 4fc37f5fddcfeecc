"""Refusals before any container starts: no seccomp filter for the machine, no init."""

from __future__ import annotations

import os

import pytest

from envkit.errors import NoFilterError, RuntimeError_
from envkit.runtime import init, seccomp


def test_a_machine_without_a_filter_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, real.release, real.version, "mips64"))
    monkeypatch.setattr(os, "uname", lambda: fake)
    monkeypatch.setattr(seccomp, "_prepared", {})
    assert not seccomp.supported()
    with pytest.raises(NoFilterError) as info:
        seccomp.prepare()
    assert info.value.exit_code == 2  # a usage error: the user can opt out
    assert "seccomp=unconfined" in str(info.value)


def test_missing_init_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVKIT_INIT", raising=False)
    monkeypatch.setattr(init, "INIT_CANDIDATES", ("/nonexistent/tini-static",))
    with pytest.raises(RuntimeError_) as info:
        init.find_init()
    assert "apt-get install tini" in str(info.value)


def test_envkit_init_chooses_the_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVKIT_INIT", "/bin/true")
    assert init.find_init() == "/bin/true"
    monkeypatch.setenv("ENVKIT_INIT", "/nonexistent/init")
    with pytest.raises(RuntimeError_, match="ENVKIT_INIT"):
        init.find_init()
