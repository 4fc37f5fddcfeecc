"""Stop signals on the real runtime: ``envkit run --stop-signal`` and ``envkit stop`` of a
detached container (from another process), ``stop -s``, an image's ``STOPSIGNAL``, and a
stack service going down. Each container is a busybox shell as pid 1 that traps one
signal and exits with a code naming it, so the exit code tells which signal came (a
shell without a handler for the signal sent would be killed: 137). And a stack's health
check on docker's start interval."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit import Healthcheck, Image, Service, Stack
from envkit.container import handle as containers
from envkit.stack import down
from envkit.stack import state as ss
from tests.integration import homes

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"


def trapping(*signals: tuple[str, int]) -> str:
    """A shell that exits with ``code`` on ``name``, for each pair; says ``ready``."""
    traps = "; ".join(f"trap 'exit {code}' {name}" for name, code in signals)
    return f"{traps}; echo ready; while true; do sleep 0.05; done"


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return homes.loaded_home(tmp_path_factory.mktemp("stopsig"), ref=BUSYBOX)


@pytest.fixture
def home(loaded_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVKIT_HOME", str(loaded_home))
    yield loaded_home
    for record in ss.all_stacks():
        down(record.name)
    from envkit.runtime import state

    for left in state.all_states():
        cli(loaded_home, ["rm", "-f", left.id])


def cli(home: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return homes.cli(home, argv, timeout=60)


def _ready(home: Path, name: str) -> None:
    deadline = time.monotonic() + 20
    while "ready" not in cli(home, ["logs", name]).stdout:
        assert time.monotonic() < deadline, "the container did not start"
        time.sleep(0.05)


def _started(home: Path, name: str, script: str, *flags: str, image: str = BUSYBOX) -> None:
    """``envkit run -d [flags] --name NAME IMAGE sh -c SCRIPT``, once it said ``ready``."""
    run = cli(home, ["run", "-d", *flags, "--name", name, image, "sh", "-c", script])
    assert run.returncode == 0, run.stderr
    _ready(home, name)


def _exit_code(home: Path, name: str) -> int | None:
    return containers.get(name).reload().exit_code


def test_run_stop_signal_is_what_stop_sends_from_another_process(home: Path) -> None:
    _started(home, "q", trapping(("QUIT", 3), ("TERM", 15)), "--stop-signal", "SIGQUIT")
    assert containers.get("q").reload().stop_signal == 3
    stop = cli(home, ["stop", "-t", "10", "q"])
    assert stop.returncode == 0 and stop.stdout == "q\n", stop.stderr
    assert _exit_code(home, "q") == 3  # QUIT's trap ran, not TERM's


def test_without_a_stop_signal_stop_sends_sigterm(home: Path) -> None:
    _started(home, "t", trapping(("QUIT", 3), ("TERM", 15)))
    assert cli(home, ["stop", "t"]).returncode == 0
    assert _exit_code(home, "t") == 15


def test_stop_dash_s_overrides_the_containers_signal(home: Path) -> None:
    _started(home, "u", trapping(("QUIT", 3), ("USR1", 10)), "--stop-signal", "QUIT")
    assert cli(home, ["stop", "-s", "usr1", "u"]).returncode == 0
    assert _exit_code(home, "u") == 10


def test_a_stop_signal_pid_1_has_no_handler_for_kills_at_once(home: Path) -> None:
    """The generalised init_ignores: no trap for USR2, so no 10 s wait, SIGKILL (137)."""
    _started(home, "k", trapping(("QUIT", 3)), "--stop-signal", "USR2")
    started = time.monotonic()
    assert cli(home, ["stop", "-t", "10", "k"]).returncode == 0
    assert time.monotonic() - started < 8
    assert _exit_code(home, "k") == 137


def test_bad_stop_signals_exit_2_naming_the_option(home: Path) -> None:
    run = cli(home, ["run", "--rm", "--stop-signal", "SIGNOPE", BUSYBOX, "true"])
    assert run.returncode == 2 and "invalid signal: SIGNOPE" in run.stderr
    assert "Traceback" not in run.stderr
    stop = cli(home, ["stop", "-s", "99", "nothere"])
    assert stop.returncode == 2 and "--signal" in stop.stderr


def test_the_images_stopsignal_is_used_unless_the_run_says_otherwise(
    home: Path, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BUSYBOX}\nSTOPSIGNAL SIGUSR2\n")
    built = Image.from_dockerfile(tmp_path / "Dockerfile", tmp_path).build(
        "stopsig:1", context=tmp_path
    )
    assert built.image_id
    script = trapping(("USR2", 12), ("QUIT", 3), ("TERM", 15))
    for name, extra, expected in (("img", [], 12), ("over", ["--stop-signal", "QUIT"], 3)):
        _started(home, name, script, *extra, image="stopsig:1")
        assert cli(home, ["stop", name]).returncode == 0
        assert _exit_code(home, name) == expected, name


def test_a_stack_service_goes_down_with_its_stop_signal(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the container's root may be another host uid
    script = (
        "trap 'echo QUIT > /out/got; exit 0' QUIT; trap 'echo TERM > /out/got; exit 0' TERM; "
        "while true; do sleep 0.05; done"
    )
    quitting = Service(
        "db",
        image=BUSYBOX,
        command=["sh", "-c", script],
        volumes={str(out): "/out"},
        stop_signal="SIGQUIT",
    )
    plain = Service(
        "web",
        image=BUSYBOX,
        command=["sh", "-c", script.replace("/out/got", "/out/web")],
        volumes={str(out): "/out"},
    )
    with Stack("stopsig", services=[quitting, plain]).up() as running:
        assert running["db"].exec(["true"]).exit_code == 0
    assert (out / "got").read_text() == "QUIT\n"
    assert (out / "web").read_text() == "TERM\n"


def test_a_stack_health_check_runs_every_start_interval_until_healthy_then_rarely(
    home: Path, tmp_path: Path
) -> None:
    """docker's start interval on the real runtime: the service is up after ~0.3 s and
    found healthy within a start interval (not after the 30 s interval); then no run
    comes for the rest of this test."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    check = Healthcheck(
        "echo run >> /out/runs; test -f /tmp/up",
        interval=30,
        start_period=60,
        start_interval=0.05,
        retries=3,
    )
    server = Service(
        "slow",
        image=BUSYBOX,
        command=["sh", "-c", "sleep 0.3; touch /tmp/up; while true; do sleep 0.05; done"],
        volumes={str(out): "/out"},
        healthcheck=check,
    )
    started = time.monotonic()
    with Stack("startint", services=[server]).up() as running:
        assert running["slow"].health == "healthy"
        assert time.monotonic() - started < 20
        first = (out / "runs").read_text().count("run")
        assert first >= 3  # failed runs every 50 ms while it started
        time.sleep(1.0)
        assert (out / "runs").read_text().count("run") == first  # then the 30 s interval
