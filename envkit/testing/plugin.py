"""The envkit pytest plugin, registered through the ``pytest11`` entry point.

It only adds options and hooks; nothing of envkit is imported until a test suite uses
a fixture from :mod:`envkit.testing`, so suites that do not use it pay nothing.

Options, each an ini value (``[pytest] envkit_keep = true``) and a flag:

``--envkit-keep``
    leave the services up when a test failed, and print how to reach them;
``--envkit-home DIR``
    the ``ENVKIT_HOME`` (store and state) the services use;
``--envkit-timeout SECONDS``
    how long a service may take to become ready (build time not counted).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envkit.records import Value

TYPE_CHECKING = False  # as typing's (type checkers honour the name), without importing typing
if TYPE_CHECKING:
    from collections.abc import Generator

    from envkit.testing.session import ServiceSession  # noqa: F401 (in a string annotation)

KEEP_HELP = "leave envkit services up after a failing run and print how to reach them"
HOME_HELP = "ENVKIT_HOME for the services tests start (default: the environment's)"
TIMEOUT_HELP = "seconds an envkit service may take to become ready (default: 120)"
DEFAULT_TIMEOUT = 120.0

SESSION_KEY = pytest.StashKey["ServiceSession"]()
FAILED_KEY = pytest.StashKey[bool]()


class Options(Value):
    """The plugin's settings: a flag wins over the ini value."""

    keep: bool = False
    home: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_config(cls, config: pytest.Config) -> Options:
        """The options given on the command line or in the ini file."""
        keep = config.getoption("envkit_keep")
        home = config.getoption("envkit_home") or str(config.getini("envkit_home") or "")
        timeout = config.getoption("envkit_timeout")
        if timeout is None:
            timeout = float(str(config.getini("envkit_timeout") or DEFAULT_TIMEOUT))
        if home:
            home = str(config.rootpath / Path(home).expanduser())
        return cls(
            keep=bool(config.getini("envkit_keep")) if keep is None else bool(keep),
            home=home or None,
            timeout=float(timeout),
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envkit", "envkit services for tests")
    group.addoption("--envkit-keep", action="store_true", default=None, help=KEEP_HELP)
    group.addoption("--envkit-home", metavar="DIR", default=None, help=HOME_HELP)
    group.addoption(
        "--envkit-timeout", metavar="SECONDS", type=float, default=None, help=TIMEOUT_HELP
    )
    parser.addini("envkit_keep", KEEP_HELP, type="bool", default=False)
    parser.addini("envkit_home", HOME_HELP, default="")
    parser.addini("envkit_timeout", TIMEOUT_HELP, default=str(DEFAULT_TIMEOUT))


def pytest_configure(config: pytest.Config) -> None:
    home = Options.from_config(config).home
    if home:
        os.environ["ENVKIT_HOME"] = home


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Per-test outcome, for fixtures that keep what a failed test used (--envkit-keep).
    report = yield
    if report.failed:
        item.stash[FAILED_KEY] = True
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    session = terminalreporter.config.stash.get(SESSION_KEY, None)
    if session is not None and session.kept:
        terminalreporter.section("envkit: services kept up (--envkit-keep)")
        for line in session.kept:
            terminalreporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # Whatever a fixture's teardown did not reach (Ctrl-C, an internal error) goes here;
    # a killed pytest is handled by each stack's supervisor, which watches this process.
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
