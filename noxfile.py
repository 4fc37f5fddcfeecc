"""Developer sessions: tests, typecheck, lint, bench (``nox -s NAME``)."""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The default test run (slow suites excluded)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over envkit/, tests/ and plugins/envkit-oci-volumes/ (pyproject ``files``)."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff")
    session.run("ruff", "check", "envkit", "tests", "plugins")
    session.run("ruff", "format", "--check", "envkit", "tests", "plugins")


@nox.session
def bench(session: nox.Session) -> None:
    """Time envkit beside its peers (podman, skopeo, tar...) and print the ratios."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "tests.benchmarks.run_all", *session.posargs)
