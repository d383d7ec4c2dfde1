"""Shared fixtures: one ``store`` fixture parametrised over both facades and every kind of
database — a SQLite file, SQLite ``:memory:`` and PostgreSQL — so every behaviour test runs
against the async store and the sync facade, on both backends, alike.

PostgreSQL: the server comes from ``POWER_STORE_PG_DSN``; each test gets a schema of its own,
dropped afterwards. Without the variable those tests skip, saying why — unless
``POWER_STORE_PG_REQUIRED=1`` (CI sets it), which turns a missing or unreachable server into a
failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from power_store import AsyncSessionStore, SessionStore

PG_DSN = os.environ.get("POWER_STORE_PG_DSN")
PG_REQUIRED = os.environ.get("POWER_STORE_PG_REQUIRED") == "1"


def pg_dsn() -> str:
    """The PostgreSQL server's DSN, or skip (fail in CI) when there is none."""
    if not PG_DSN:
        message = (
            "no PostgreSQL: set POWER_STORE_PG_DSN (e.g. postgresql://postgres@127.0.0.1/test)"
        )
        if PG_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return PG_DSN


def drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def pg_target() -> Iterator[str]:
    """A DSN naming a fresh schema (``?schema=…``), dropped after the test."""
    dsn = pg_dsn()
    schema = "ps_test_" + secrets.token_hex(6)
    joiner = "&" if urlsplit(dsn).query else "?"
    yield f"{dsn}{joiner}schema={schema}"
    drop_schema(dsn, schema)


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


class SyncAsAsync:
    """Drives a SessionStore through an awaitable surface so tests can treat both alike.

    Calls are made directly from the test's event-loop thread — the "sync helper called from
    async code" case the facade must support.
    """

    def __init__(self, store: SessionStore) -> None:
        self.sync = store
        self.path = store.path
        self.backend = store.backend

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.sync, name)

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


@pytest.fixture(params=["file", "memory", "postgres"])
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file, SQLite ``:memory:``, or a PostgreSQL schema."""
    if request.param == "postgres":
        target: str = request.getfixturevalue("pg_target")
        return target
    return str(tmp_path / "sessions.db") if request.param == "file" else ":memory:"


@pytest_asyncio.fixture(params=["async", "sync"])
async def store(request: pytest.FixtureRequest, db_path: str) -> AsyncIterator[Any]:
    if request.param == "async":
        async with AsyncSessionStore.open(db_path) as s:
            yield s
    else:
        sync = SessionStore.open(db_path)
        try:
            yield SyncAsAsync(sync)
        finally:
            sync.close()


@pytest.fixture
def file_path(tmp_path: Path) -> str:
    """A SQLite file: for tests of SQLite's own mechanics (WAL, file modes, its errors)."""
    return str(tmp_path / "sessions.db")


@pytest.fixture(params=["file", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several stores, threads or processes can open at once: a SQLite file or a
    PostgreSQL schema."""
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("pg_target")
        return dsn
    return str(tmp_path / "sessions.db")


async def sql_rows(store: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run *sql* (``?`` placeholders) straight on the database of *store* (a store, or its
    path or DSN), bypassing power_store, in a transaction of its own; return its rows. For
    checks the API has no read for, and for writes "by another program"."""
    where: str = store if isinstance(store, str) else store.path
    if is_postgres(where):
        import asyncpg

        dsn, _, schema = where.partition("?schema=")
        numbered = iter(range(1, sql.count("?") + 1))
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            text = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
            return [tuple(r) for r in await conn.fetch(text, *args)]
        finally:
            await conn.close()
    with contextlib.closing(sqlite3.connect(where)) as db, db:
        return db.execute(sql, args).fetchall()


def is_sync(store: Any) -> bool:
    return isinstance(store, SyncAsAsync)


async def collect(store: Any, name: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Drain an iterator-returning method on either facade (blocking generator or async)."""
    if is_sync(store):
        return list(getattr(store.sync, name)(*args, **kwargs))
    return [item async for item in getattr(store, name)(*args, **kwargs)]
