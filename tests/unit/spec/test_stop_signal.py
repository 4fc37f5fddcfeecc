"""Stop signals: docker's names and numbers, ``Service(stop_signal=...)`` and which
signal a container stops with (the service's or run's, else the image's, else SIGTERM)."""

from __future__ import annotations

import pytest

from envkit.errors import SpecError
from envkit.spec import Image, Service, signals

#: moby/sys signal/signal_linux.go ``SignalMap`` (moby/sys
#: d7c3b9ed55ae8615532b1310d4c56a94ea1e895d; not mips), with Linux's numbers: every name
#: parses to its number (moby's TestParseSignal loops over the map the same way).
MOBY_LINUX_SIGNALS = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8,
    "HUP": 1, "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29,
    "PROF": 27, "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31,
    "TERM": 15, "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10,
    "USR2": 12, "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25,
    "RTMIN": 34, **{f"RTMIN+{n}": 34 + n for n in range(1, 16)},
    **{f"RTMAX-{n}": 64 - n for n in range(1, 15)}, "RTMAX": 64,
}  # fmt: skip

#: moby/sys signal_test.go TestParseSignal: these are "invalid signal: ..." errors.
MOBY_INVALID = ["0", "SIG"]


def test_the_table_is_mobys() -> None:
    assert signals.SIGNALS == MOBY_LINUX_SIGNALS


@pytest.mark.parametrize(("name", "number"), sorted(MOBY_LINUX_SIGNALS.items()))
def test_every_name_parses_with_or_without_sig_in_any_case(name: str, number: int) -> None:
    for spelling in (name, f"SIG{name}", name.lower(), f"sig{name.lower()}"):
        assert signals.number(spelling) == number
    assert signals.number(str(number)) == number
    assert signals.number(number) == number


@pytest.mark.parametrize("text", MOBY_INVALID)
def test_mobys_invalid_signals(text: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid signal: {text}$"):
        signals.number(text)


@pytest.mark.parametrize("value", [32, 33, 65, -3, "RTMIN+16", "RTMAX-15", "TERMINATE", "", True])
def test_what_linux_cannot_send_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="invalid signal"):
        signals.number(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("quit", "SIGQUIT"),
        (3, "SIGQUIT"),
        ("3", "SIGQUIT"),
        ("SIGUSR1", "SIGUSR1"),
        (6, "SIGABRT"),  # not SIGIOT: the first name of a number
        ("iot", "SIGABRT"),
        (17, "SIGCHLD"),
        (29, "SIGIO"),
        ("RTMIN+3", "SIGRTMIN+3"),
        (50, "SIGRTMAX-14"),
        (64, "SIGRTMAX"),
    ],
)
def test_canonical_names(value: str | int, name: str) -> None:
    assert signals.name(value) == name


def test_service_stores_one_canonical_form() -> None:
    forms = [Service("db", image=Image.scratch(), stop_signal=v) for v in ("quit", 3, "SIGQUIT")]
    assert {s.stop_signal for s in forms} == {"SIGQUIT"}
    assert forms[0] == forms[1] == forms[2]
    assert len({s.cache_key() for s in forms}) == 1
    assert forms[0].canonical()["stop_signal"] == "SIGQUIT"


def test_service_canonical_form_has_stop_signal_only_when_set() -> None:
    plain = Service("db", image=Image.scratch())
    assert plain.stop_signal is None
    assert "stop_signal" not in plain.canonical()
    assert plain.cache_key() != Service("db", image=Image.scratch(), stop_signal="TERM").cache_key()


@pytest.mark.parametrize("value", ["SIGFOO", 0, 99, 2.5, ["QUIT"], True])
def test_service_refuses_a_bad_stop_signal_naming_the_field(value: object) -> None:
    with pytest.raises(SpecError) as caught:
        Service("db", image=Image.scratch(), stop_signal=value)  # type: ignore[arg-type]
    assert "Service('db').stop_signal" in str(caught.value)


# (given by the service / --stop-signal, the image config's StopSignal) -> the signal.
# Docker's order: moby daemon/container/container.go StopSignal() (defaultStopSignal
# SIGTERM; an image value ParseSignal refuses falls back to it) and daemon/commit.go
# (the image's StopSignal when the container config has none).
SELECTION = [
    (None, None, 15),
    (None, "", 15),
    (None, "SIGQUIT", 3),
    (None, "quit", 3),
    (None, "3", 3),
    (None, "SIGBOGUS", 15),
    (None, "0", 15),
    ("SIGUSR1", "SIGQUIT", 10),
    ("USR2", None, 12),
    (9, "SIGQUIT", 9),
    ("SIGTERM", "SIGQUIT", 15),
]


@pytest.mark.parametrize(("given", "image", "expected"), SELECTION)
def test_stop_signal_selection(given: str | int | None, image: str | None, expected: int) -> None:
    assert signals.stop_signal(given, image) == expected


def test_a_bad_given_signal_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ValueError, match="invalid signal"):
        signals.stop_signal("SIGBOGUS", "SIGQUIT")


def test_stop_grace_period_is_in_the_canonical_form_only_when_set() -> None:
    """compose's ``stop_grace_period`` in seconds; 0 kills at once (as ``down -t 0``)."""
    plain = Service("db", image=Image.scratch())
    assert plain.stop_grace_period is None and "stop_grace_period" not in plain.canonical()
    patient = Service("db", image=Image.scratch(), stop_grace_period=90)
    assert patient.canonical()["stop_grace_period"] == 90
    assert Service("db", image=Image.scratch(), stop_grace_period=0).stop_grace_period == 0
    assert plain.cache_key() != patient.cache_key()
