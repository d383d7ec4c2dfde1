"""The one place that reaches into aiosqlite's internals.

Each aiosqlite connection owns a thread that runs queued callables. Its public API offers one
call per statement, and every call is a thread hand-off (~87 µs measured); power_store runs a
whole batch or a whole read as ONE callable instead, through ``Connection._execute``. The
writer goes one step further with :func:`post`: it puts its callable straight on the
connection's work queue with no future attached, because it resolves its callers itself and an
aiosqlite future would cost a second wake-up of the event loop per batch. These private names
are used here and nowhere else; ``tests/test_exports.py`` fails loudly if an aiosqlite release
changes them. Checked with aiosqlite 0.22.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")


def check_aiosqlite() -> None:
    """Raise ImportError if this aiosqlite lacks the internals power_store relies on."""
    missing = [name for name in ("_execute", "_conn") if not hasattr(aiosqlite.Connection, name)]
    # _tx is set per instance; building one (never started) costs no thread or file.
    unstarted = aiosqlite.Connection(functools.partial(sqlite3.connect, ":memory:"), 64)
    if not hasattr(getattr(unstarted, "_tx", None), "put_nowait"):
        missing.append("_tx")
    if missing:
        raise ImportError(
            f"power_store needs aiosqlite's private Connection.{', '.join(missing)}, "
            f"which aiosqlite {aiosqlite.__version__} does not have"
        )


async def connect(database: str, **kwargs: Any) -> aiosqlite.Connection:
    conn = aiosqlite.connect(database, isolation_level=None, **kwargs)
    # A store that is never closed must not keep the interpreter from exiting: aiosqlite's
    # worker threads are non-daemon when created from a non-daemon thread.
    conn._thread.daemon = True
    conn._thread.name = "power_store-sqlite"
    return await conn


def is_alive(conn: aiosqlite.Connection) -> bool:
    """False once *conn* was closed or its worker thread stopped: it can never answer again."""
    # Defaults that say "alive": should aiosqlite rename these, a dead reader goes unnoticed
    # (as before this check existed) instead of every read replacing its connection.
    return bool(
        getattr(conn, "_running", True)
        and getattr(conn, "_connection", conn) is not None
        and conn._thread.is_alive()
    )


async def run(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(sqlite3_connection, *args)`` on *conn*'s thread, in one hand-off."""
    result: T = await conn._execute(_call, conn, fn, args)  # type: ignore[no-untyped-call]
    return result


def post(conn: aiosqlite.Connection, fn: Callable[..., object], *args: Any) -> None:
    """Queue ``fn(sqlite3_connection, *args)`` on *conn*'s thread and return at once.

    Nothing reports back: *fn* must deliver its own outcome, and must not raise (aiosqlite
    would only log it).
    """
    conn._tx.put_nowait((None, functools.partial(_call, conn, fn, args)))


def _call(conn: aiosqlite.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(conn._conn, *args)
