"""``--cap-add`` / ``--cap-drop`` and ``--security-opt``: the capability set and the
seccomp filter follow them as docker's do, and ``exec`` gets the container's."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.runtime import caps, seccomp
from tests.integration import homes

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"
CAPEFF = ["sh", "-c", "grep CapEff /proc/self/status | cut -f2"]


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("caps"), ref=BUSYBOX)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    yield loaded_home
    from envkit.runtime import state

    for record in state.all_states():
        cli(loaded_home, ["rm", "-f", record.id])


def cli(home: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return homes.cli(home, argv, timeout=60)


def effective(out: str) -> frozenset[int]:
    return caps.parse_mask(out.strip())


def test_default_capabilities(home: Path) -> None:
    done = cli(home, ["run", "--rm", BUSYBOX, *CAPEFF])
    assert done.returncode == 0, done.stderr
    assert effective(done.stdout) == caps.DEFAULT


def test_cap_add_and_drop(home: Path) -> None:
    done = cli(
        home,
        ["run", "--rm", "--cap-add", "sys_ptrace", "--cap-drop", "CAP_CHOWN", BUSYBOX, *CAPEFF],
    )
    assert done.returncode == 0, done.stderr
    want = (caps.DEFAULT - {caps.CAP["CHOWN"]}) | {caps.CAP["SYS_PTRACE"]}
    assert effective(done.stdout) == want
    none = cli(home, ["run", "--rm", "--cap-drop", "ALL", BUSYBOX, *CAPEFF])
    assert effective(none.stdout) == frozenset()


def test_cap_add_widens_the_seccomp_filter_as_dockers_profile_says(home: Path) -> None:
    # unshare(2) is allowed by Docker's profile only with CAP_SYS_ADMIN.
    unshare = ["busybox", "unshare", "-u", "true"]
    refused = cli(home, ["run", "--rm", BUSYBOX, *unshare])
    assert refused.returncode == 1 and "Operation not permitted" in refused.stderr
    allowed = cli(home, ["run", "--rm", "--cap-add", "SYS_ADMIN", BUSYBOX, *unshare])
    assert allowed.returncode == 0, allowed.stderr


def test_exec_gets_the_containers_capabilities_and_inspect_shows_them(home: Path) -> None:
    argv = ["run", "-d", "--init", "--name", "capped", "--cap-add", "NET_ADMIN"]
    started = cli(home, [*argv, BUSYBOX, "sleep", "60"])
    assert started.returncode == 0, started.stderr
    done = cli(home, ["exec", "capped", *CAPEFF])
    assert effective(done.stdout) == caps.DEFAULT | {caps.CAP["NET_ADMIN"]}
    shown = json.loads(cli(home, ["inspect", "capped"]).stdout)[0]["Security"]
    assert "CAP_NET_ADMIN" in shown["Capabilities"]
    assert shown["Seccomp"] == seccomp.profile_name()


def test_unknown_capability_is_a_usage_error(home: Path) -> None:
    done = cli(home, ["run", "--rm", "--cap-add", "NO_SUCH_CAP", BUSYBOX, "true"])
    assert done.returncode == 2
    assert "unknown capability" in done.stderr and "Traceback" not in done.stderr


def test_seccomp_unconfined(home: Path) -> None:
    status = ["grep", "Seccomp:", "/proc/self/status"]
    done = cli(home, ["run", "--rm", "--security-opt", "seccomp=unconfined", BUSYBOX, *status])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Seccomp:", "0"]
    filtered = cli(home, ["run", "--rm", BUSYBOX, *status])
    assert filtered.stdout.split() == ["Seccomp:", "2"]
    bad = cli(home, ["run", "--rm", "--security-opt", "apparmor=x", BUSYBOX, "true"])
    assert bad.returncode == 2 and "unsupported option" in bad.stderr
