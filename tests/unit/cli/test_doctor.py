"""envkit doctor: rendering, exit codes, and probes that agree with the kernel."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

from envkit.cli import main
from envkit.runtime import probes
from envkit.runtime.probes import Check


def fake(*checks: Check) -> tuple[Callable[[], Check], ...]:
    return tuple(functools.partial(_returns, c) for c in checks)


def _returns(check: Check) -> Check:
    return check


def test_missing_required_exits_1_with_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        probes,
        "PROBES",
        fake(
            Check("kernel", True, "Linux 6.1"),
            Check("user namespaces", False, "refused", "sysctl -w x=1"),
        ),
    )
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "ok      kernel: Linux 6.1" in out
    assert "MISSING user namespaces: refused" in out
    assert "fix: sysctl -w x=1" in out


def test_optional_gap_is_limited_and_strict_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        probes, "PROBES", fake(Check("/dev/net/tun", False, "closed", "chmod", required=False))
    )
    assert main(["doctor"]) == 0
    assert "limited /dev/net/tun: closed" in capsys.readouterr().out
    assert main(["doctor", "--strict"]) == 1


def test_userns_probe_agrees_with_unshare() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare not installed")
    expected = subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode == 0
    assert probes.user_namespaces().ok is expected


def test_probes_leave_the_caller_unchanged() -> None:
    namespaces = ("user", "mnt")
    before = [os.readlink(f"/proc/self/ns/{ns}") for ns in namespaces]
    probes.run_all()
    assert [os.readlink(f"/proc/self/ns/{ns}") for ns in namespaces] == before
