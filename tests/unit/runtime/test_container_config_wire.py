"""ContainerConfig's JSON form, which the container monitor receives from a caller."""

from __future__ import annotations

import json

import pytest

from envkit.errors import SpecError
from envkit.runtime.config import BindMount, ContainerConfig, TmpfsMount


def _config(**changes: object) -> ContainerConfig:
    fields: dict[str, object] = {
        "layers": ["/l/top", "/l/base"],
        "argv": ["sh", "-c", "echo hi"],
        "upper_dir": "/c/upper",
        "work_dir": "/c/work",
        "env": {"PATH": "/bin", "A": "b=c"},
        "cwd": "/srv",
        "uid": 1000,
        "gid": 1000,
        "groups": (10, 20),
        "hostname": "web",
        "mounts": [BindMount("/data", "/data", True), TmpfsMount("/tmp", 1 << 20, 0o1777)],
        "readonly_root": True,
        "die_with_parent": False,
        "tty": True,
        "tty_size": (24, 80),
        "ulimits": [("nofile", 1024, 2048), ("core", -1, -1)],
        "shm_size": 1 << 30,
        "sysctls": [("net.core.somaxconn", "1024")],
        "capabilities": frozenset({0, 1, 21}),
    }
    fields.update(changes)
    return ContainerConfig(**fields)  # type: ignore[arg-type]


def test_round_trip_through_json_keeps_every_field() -> None:
    config = _config()
    back = ContainerConfig.from_wire(json.loads(json.dumps(config.to_wire())))
    compared = []
    for name in ContainerConfig.__slots__:
        if name in ContainerConfig.LOCAL_FIELDS:
            continue
        want = getattr(config, name)
        # tuples stay tuples where the config makes them so, others come back as lists
        kept = name in ("tty_size", "ulimits", "sysctls")
        want = list(want) if isinstance(want, tuple) and not kept else want
        assert getattr(back, name) == want, name
        compared.append(name)
    assert {"argv", "env", "layers", "mounts"} <= set(compared), compared
    assert isinstance(back.mounts[0], BindMount) and isinstance(back.mounts[1], TmpfsMount)


def test_local_fields_stay_behind_and_are_given_by_the_receiver() -> None:
    config = _config(stdio=(0, 1, 2), userns="/proc/1/ns/user", on_namespaces=print)
    wire = config.to_wire()
    assert not set(ContainerConfig.LOCAL_FIELDS) & wire.keys()
    back = ContainerConfig.from_wire(wire, stdio=(5, 6, 7), userns="/proc/self/fd/9")
    assert back.stdio == (5, 6, 7) and back.userns == "/proc/self/fd/9"
    assert back.on_namespaces is None


@pytest.mark.parametrize("extra", [{"privileged": True}, {"on_namespaces": "x"}])
def test_unknown_or_local_fields_on_the_wire_are_refused(extra: dict[str, object]) -> None:
    wire = {**_config().to_wire(), **extra}
    with pytest.raises(SpecError):
        ContainerConfig.from_wire(wire)


def test_the_wire_form_is_validated_again() -> None:
    wire = _config().to_wire()
    wire["cwd"] = "relative"
    with pytest.raises(SpecError):
        ContainerConfig.from_wire(wire)


def test_init_ignores_reads_the_signal_handlers_of_a_process() -> None:
    import os
    import signal
    import subprocess
    import time

    from envkit.runtime.state import init_ignores

    assert not init_ignores(os.getpid(), signal.SIGINT)  # Python's KeyboardInterrupt handler
    saved = signal.signal(signal.SIGUSR2, lambda *_: None)
    try:
        assert not init_ignores(os.getpid(), signal.SIGUSR2)  # caught
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})  # to wait for it
        assert not init_ignores(os.getpid(), signal.SIGUSR2)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
        signal.signal(signal.SIGUSR2, saved)
    sleeper = subprocess.Popen(["sleep", "30"])  # no handler, asleep in nanosleep
    try:
        deadline = time.monotonic() + 10
        while not init_ignores(sleeper.pid, signal.SIGTERM):
            assert time.monotonic() < deadline, "sleep never counted as ignoring SIGTERM"
            time.sleep(0.01)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not init_ignores(2**22 + 12345, signal.SIGTERM)  # no such process: wait as usual


def test_a_stop_wait_ends_early_once_the_init_is_seen_ignoring_the_signal() -> None:
    """``wait_gone_or_ignored``: a process that will never get the signal ends the wait
    at the next look (not the whole timeout); one that catches it is waited for, and one
    that ends meanwhile is ``True``."""
    import signal
    import subprocess
    import threading
    import time

    from envkit.runtime.state import IGNORE_POLL, process_start, wait_gone_or_ignored

    def started(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
        proc = subprocess.Popen(argv)
        threading.Thread(target=proc.wait, daemon=True).start()  # reaped when it ends
        return proc, process_start(proc.pid) or 0

    sleeper, start = started(["sleep", "30"])  # no USR2 handler, asleep in nanosleep
    try:
        began = time.monotonic()
        assert not wait_gone_or_ignored(sleeper.pid, start, signal.SIGUSR2, 20)
        assert time.monotonic() - began < 10
    finally:
        sleeper.kill()
    catcher, start = started(["sh", "-c", "trap 'exit 3' USR2; while :; do sleep 0.05; done"])
    try:
        time.sleep(0.2)  # its trap is set
        began = time.monotonic()
        assert not wait_gone_or_ignored(catcher.pid, start, signal.SIGUSR2, 3 * IGNORE_POLL)
        assert time.monotonic() - began >= 2 * IGNORE_POLL  # waited: it would get USR2
    finally:
        catcher.kill()
    ending, start = started(["sh", "-c", "trap 'exit 3' USR2; sleep 0.3"])
    assert wait_gone_or_ignored(ending.pid, start, signal.SIGUSR2, 10)


@pytest.mark.parametrize("text", ["relative:/x", "data:/var/lib/data", "./here:/x:ro"])
def test_a_relative_or_named_volume_source_says_what_run_takes(text: str) -> None:
    """docker reads ``-v name:/path`` as a named volume; run takes bind mounts only, and
    said so with the repr of a mount the user never wrote."""
    with pytest.raises(SpecError) as raised:
        BindMount.parse(text)
    assert f"(got {text!r})" in str(raised.value)
    assert raised.value.hint is not None and "$PWD" in raised.value.hint
