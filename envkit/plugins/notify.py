"""Lifecycle notifications to plugins: the calls the stack and build code make.

Each function calls its hook on every plugin that implements it, one at a time: a
listener that raises is logged (``envkit.plugins`` logger, with the plugin's name) and
the others still hear of the event; nothing a listener does can fail a stack or a build.
With ``ENVKIT_TRACE_PLUGINS=1`` each call is shown on stderr like the other hook calls.

Without a manager given or loaded, and with no plugin beyond the built-ins installed
(:mod:`envkit.plugins.presence`), nobody listens: nothing is loaded, and a stack
supervisor holds no pluggy for its whole life.
"""

from __future__ import annotations

import os
import sys

from envkit.plugins.presence import plugins_beyond_builtins

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from envkit.plugins.manager import PluginManager


def service_started(stack: str, service: str, *, manager: PluginManager | None = None) -> None:
    """Tell plugins that ``service`` of ``stack`` started (its command runs)."""
    _notify(manager, "envkit_service_started", stack=stack, service=service)


def service_stopped(
    stack: str, service: str, exit_code: int | None = None, *, manager: PluginManager | None = None
) -> None:
    """Tell plugins that ``service`` of ``stack`` stopped, with its exit status if known."""
    _notify(manager, "envkit_service_stopped", stack=stack, service=service, exit_code=exit_code)


def build_step_finished(
    step: str, key: str, cached: bool, seconds: float, *, manager: PluginManager | None = None
) -> None:
    """Tell plugins that build step ``step`` (cache key ``key``) finished."""
    _notify(
        manager, "envkit_build_step_finished", step=step, key=key, cached=cached, seconds=seconds
    )


def _notify(manager: PluginManager | None, hook_name: str, **kwargs: object) -> None:
    if manager is None:
        if not plugins_beyond_builtins():
            return
        from envkit.plugins.manager import get_manager  # lazy: pluggy only with plugins

        manager = get_manager()
    hook = getattr(manager.pm.hook, hook_name)
    impls = hook.get_hookimpls()
    if not impls:
        return
    trace = os.environ.get("ENVKIT_TRACE_PLUGINS", "") not in ("", "0")
    for impl in reversed(impls):  # pluggy's order: the last registered first
        if trace:
            shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            print(f"envkit-trace: {hook_name}({shown}) -> {impl.plugin_name}", file=sys.stderr)
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception as exc:  # a listener must not break what it listens to
            import logging  # lazy: only for a listener that failed

            logging.getLogger("envkit.plugins").warning(
                "plugin %s failed in %s: %s: %s", impl.plugin_name, hook_name,
                type(exc).__name__, exc,
            )  # fmt: skip
