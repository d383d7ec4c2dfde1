"""Developer sessions: ``nox -s tests lint typecheck``; slow runs: ``nox -s bench crash``."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"


@nox.session(python=["3.10", "3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy>=1.10")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """The full benchmark: one run, every workload, ratios printed and written to bench.json."""
    session.install("-e", ".")
    session.run("python", "benchmarks/bench.py", "--json", "bench.json", *session.posargs)


@nox.session
def crash(session: nox.Session) -> None:
    """kill -9 a writing store 200 times (POWER_STORE_CRASH_ITERATIONS) and check every ack."""
    session.install("-e", ".[test]")
    iterations = os.environ.get("POWER_STORE_CRASH_ITERATIONS", "200")
    session.run(
        "python", "-m", "pytest", "-s", "--timeout=0", "tests/test_crash.py", *session.posargs,
        env={"POWER_STORE_CRASH_ITERATIONS": iterations},
    )  # fmt: skip
