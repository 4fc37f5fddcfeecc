"""A stack stops each service's container with its stop signal (what the launcher
resolved at start: the service's, else the image's, else SIGTERM), then SIGKILL."""

from __future__ import annotations

import signal
from collections.abc import Callable

from envkit.spec import Service, Stack
from envkit.spec.signals import stop_signal
from envkit.stack import control
from envkit.stack import state as ss
from envkit.stack.instance import Started
from envkit.stack.supervisor import Supervisor
from tests.unit.stack.test_supervisor import FakeOps, _until, running

__all__ = ["running"]  # the fixture, used by name


class SignalOps(FakeOps):
    """Starts as the launcher does: the container's stop signal is the service's, else
    an image config's ``StopSignal`` given here per service."""

    def __init__(self, image_signals: dict[str, str]) -> None:
        super().__init__()
        self.image_signals = image_signals

    def start(self, stack: Stack, name: str, image: str, state: ss.StackState) -> Started:
        started = super().start(stack, name, image, state)
        started.stop_signal = stop_signal(stack[name].stop_signal, self.image_signals.get(name))
        return started


def test_stop_sends_each_service_its_stop_signal(
    running: Callable[..., Supervisor],
) -> None:
    services = [
        Service("db", image="busybox:1", stop_signal="SIGQUIT"),
        Service("cache", image="busybox:1"),  # the image's STOPSIGNAL
        Service("web", image="busybox:1"),  # neither: SIGTERM
        Service("worker", image="busybox:1", stop_signal=10),  # over the image's
    ]
    ops = SignalOps({"cache": "SIGINT", "worker": "SIGINT"})
    supervisor = running(Stack("sig", services=services), ops)
    _until(lambda: len(ops.started) == 4)
    path = supervisor.state.control_path
    control.request(path, control.Stop(("db",)), timeout=10)
    assert ops.signals == [("db", signal.SIGQUIT)]
    # the rest as `envkit down` stops them (the same path: _stop_instances)
    control.request(path, control.Stop(("cache", "web", "worker")), timeout=10)
    assert sorted(ops.signals) == sorted(
        [
            ("db", signal.SIGQUIT),
            ("cache", signal.SIGINT),
            ("web", signal.SIGTERM),
            ("worker", signal.SIGUSR1),
        ]
    )


def test_started_defaults_to_sigterm() -> None:
    assert Started(object(), "").stop_signal == signal.SIGTERM  # type: ignore[arg-type]
