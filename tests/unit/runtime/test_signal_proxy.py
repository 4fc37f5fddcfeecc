"""docker's sig-proxy for a foreground container (envkit.runtime.spawn.proxy_signals):
signals reach pid 1, a second Ctrl-C kills it, and a signal that comes before the
container could be attached (just after its command's exec) waits for it instead of
interrupting envkit. The CI saw the last one: a Ctrl-C in that window ended `envkit run`."""

from __future__ import annotations

import os
import signal
from typing import cast

from envkit.runtime.spawn import ContainerProcess, proxy_signals


class Recorder:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def kill(self, sig: int) -> None:
        self.sent.append(sig)


def test_a_signal_before_the_container_is_attached_waits_for_it() -> None:
    recorder = Recorder()
    before = signal.getsignal(signal.SIGINT)
    with proxy_signals() as proxy:
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
        os.kill(os.getpid(), signal.SIGTERM)
        assert recorder.sent == []
        proxy.attach(cast(ContainerProcess, recorder))
        assert recorder.sent == [signal.SIGINT, signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C: stop it for good
        assert recorder.sent[-1] == signal.SIGKILL
    assert signal.getsignal(signal.SIGINT) is before


def test_a_container_given_at_once_gets_the_signals() -> None:
    recorder = Recorder()
    with proxy_signals(cast(ContainerProcess, recorder)):
        os.kill(os.getpid(), signal.SIGUSR1)
    assert recorder.sent == [signal.SIGUSR1]
