"""Signal names and numbers as docker reads them (``--stop-signal``, compose's
``stop_signal``, the image config's ``StopSignal``, ``docker kill -s``).

The table is moby's Linux one (github.com/moby/sys ``signal/signal_linux.go``
``SignalMap``): a name without its ``SIG`` prefix, any case (``QUIT``, ``sigquit``), or
a number. Docker's ``ParseSignal`` takes any number > 0; envkit takes the numbers the
table has (1-31 and the real-time 34-64), since a container on Linux can be sent no
other. One canonical spelling for each: ``SIGQUIT``, ``SIGRTMIN+3``, ``SIGRTMAX``, so
that ``"quit"``, ``"SIGQUIT"`` and ``3`` make the same spec (and cache key).
"""

from __future__ import annotations

#: Classic Linux signals by the name moby's table gives them; aliases last, so that
#: :func:`name` prefers the first name of a number (ABRT over IOT, CHLD over CLD).
_CLASSIC = (
    ("HUP", 1), ("INT", 2), ("QUIT", 3), ("ILL", 4), ("TRAP", 5), ("ABRT", 6), ("BUS", 7),
    ("FPE", 8), ("KILL", 9), ("USR1", 10), ("SEGV", 11), ("USR2", 12), ("PIPE", 13),
    ("ALRM", 14), ("TERM", 15), ("STKFLT", 16), ("CHLD", 17), ("CONT", 18), ("STOP", 19),
    ("TSTP", 20), ("TTIN", 21), ("TTOU", 22), ("URG", 23), ("XCPU", 24), ("XFSZ", 25),
    ("VTALRM", 26), ("PROF", 27), ("WINCH", 28), ("IO", 29), ("PWR", 30), ("SYS", 31),
    ("IOT", 6), ("CLD", 17), ("POLL", 29),
)  # fmt: skip
_RTMIN, _RTMAX = 34, 64

#: Every name moby's Linux table knows (without ``SIG``) -> its number.
SIGNALS: dict[str, int] = {
    **dict(_CLASSIC),
    "RTMIN": _RTMIN,
    **{f"RTMIN+{n}": _RTMIN + n for n in range(1, 16)},
    **{f"RTMAX-{n}": _RTMAX - n for n in range(1, 15)},
    "RTMAX": _RTMAX,
}
_NAMES: dict[int, str] = {}
for _name, _number in SIGNALS.items():
    _NAMES.setdefault(_number, _name)

SIGTERM = 15
SIGKILL = 9


def number(value: str | int) -> int:
    """The number of signal ``value`` (``"SIGQUIT"``, ``"quit"``, ``"3"``, ``3``);
    :class:`ValueError` (``invalid signal: ...``, moby's words) when it names none."""
    if isinstance(value, bool):
        raise ValueError(f"invalid signal: {value!r}")
    if isinstance(value, int):
        found: int | None = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            found = int(text)
        else:
            upper = text.upper()
            found = SIGNALS.get(upper[3:] if upper.startswith("SIG") else upper)
    else:
        raise ValueError(f"invalid signal: {value!r}")
    if found is None or found not in _NAMES:
        raise ValueError(f"invalid signal: {value}")
    return found


def name(value: str | int) -> str:
    """The canonical name of signal ``value``: ``SIGQUIT``, ``SIGRTMIN+3``."""
    return "SIG" + _NAMES[number(value)]


def stop_signal(given: str | int | None, image: object = None) -> int:
    """The signal a container stops with: ``given`` (``--stop-signal``, a service's
    ``stop_signal``; :class:`ValueError` when it names no signal), else the image
    config's ``StopSignal`` (``image``), else SIGTERM. An image's value that is empty or
    names no signal counts as none, as docker reads it (moby's ``Container.StopSignal``)."""
    if given is not None:
        return number(given)
    if isinstance(image, str) and image:
        try:
            return number(image)
        except ValueError:
            pass
    return SIGTERM
