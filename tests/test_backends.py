"""Which backend a target opens, and the options each backend takes or refuses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import sql_rows

from power_store import (
    AsyncSessionStore,
    InvalidArgument,
    SchemaTooNew,
    SessionStore,
    StoreOpenError,
)


@pytest.mark.asyncio
async def test_a_path_or_sqlite_url_opens_sqlite(tmp_path: Path) -> None:
    for target in (tmp_path / "a.db", str(tmp_path / "b.db"), ":memory:", "sqlite:///:memory:"):
        async with AsyncSessionStore.open(target) as store:
            assert store.backend == "sqlite"
    async with AsyncSessionStore.open(f"sqlite:///{tmp_path}/c.db") as store:
        assert store.path == str(tmp_path / "c.db")


@pytest.mark.asyncio
async def test_a_dsn_opens_postgres_and_hides_its_password(pg_target: str) -> None:
    async with AsyncSessionStore.open(pg_target) as store:
        assert store.backend == "postgres"
    dsn = pg_target.replace("postgresql://", "postgres://", 1)
    with_password = dsn.replace("postgres@", "postgres:s3cret@", 1)
    async with AsyncSessionStore.open(with_password) as store:  # trust auth ignores it
        assert "s3cret" not in store.path
        assert "s3cret" not in repr(store)


@pytest.mark.parametrize(
    "option",
    [{"schema": "x"}, {"connect_timeout": 1.0}, {"statement_cache_size": 0}],
    ids=["schema", "connect_timeout", "statement_cache_size"],
)
@pytest.mark.asyncio
async def test_postgres_options_are_refused_on_sqlite(option: dict[str, object]) -> None:
    (name,) = option
    with pytest.raises(InvalidArgument, match=f"{name} only applies to the postgres backend"):
        await AsyncSessionStore.open(":memory:", **option)


@pytest.mark.parametrize(
    "option", [{"synchronous": "full"}, {"busy_timeout": 1.0}], ids=["synchronous", "busy"]
)
@pytest.mark.asyncio
async def test_sqlite_options_are_refused_on_postgres(
    pg_target: str, option: dict[str, object]
) -> None:
    (name,) = option
    with pytest.raises(InvalidArgument, match=f"{name} only applies to the sqlite backend"):
        await AsyncSessionStore.open(pg_target, **option)
    with pytest.raises(InvalidArgument, match=name):
        SessionStore.open(pg_target, **option)


@pytest.mark.parametrize(
    "schema", ['x"; DROP SCHEMA public; --', "Upper", "1starts_with_digit", "", "a" * 64, 7]
)
@pytest.mark.asyncio
async def test_schema_names_are_checked_never_pasted(schema: object) -> None:
    dsn = "postgresql://nobody@127.0.0.1:1/none"  # never reached: the check comes first
    with pytest.raises(InvalidArgument, match="schema"):
        await AsyncSessionStore.open(dsn, schema=schema)


@pytest.mark.asyncio
async def test_the_schema_may_ride_in_the_dsn_but_not_twice_differently(pg_target: str) -> None:
    schema = pg_target.rpartition("schema=")[2]
    async with AsyncSessionStore.open(pg_target, schema=schema) as store:  # the same: fine
        await store.create_session(session_id="here")
    with pytest.raises(InvalidArgument, match="contradicts"):
        await AsyncSessionStore.open(pg_target, schema="elsewhere")
    with pytest.raises(InvalidArgument, match="schema"):
        await AsyncSessionStore.open(pg_target.replace("schema=", "schema=Bad"))
    # The tables are in that schema, nowhere else.
    assert await sql_rows(pg_target, "SELECT session_id FROM sessions") == [("here",)]


@pytest.mark.asyncio
async def test_an_unreachable_server_is_a_typed_error() -> None:
    with pytest.raises(StoreOpenError, match="cannot connect"):
        await AsyncSessionStore.open("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)


@pytest.mark.asyncio
async def test_a_schema_from_a_newer_power_store_is_refused(pg_target: str) -> None:
    async with AsyncSessionStore.open(pg_target):
        pass
    await sql_rows(pg_target, "UPDATE schema_version SET version = version + 1")
    with pytest.raises(SchemaTooNew):
        await AsyncSessionStore.open(pg_target)


def test_without_asyncpg_the_error_says_what_to_install() -> None:
    script = textwrap.dedent("""
        import asyncio, sys
        sys.modules["asyncpg"] = None  # as if it were not installed
        from power_store import AsyncSessionStore

        async def main() -> None:
            await AsyncSessionStore.open("postgresql://nobody@127.0.0.1:1/none")

        try:
            asyncio.run(main())
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "pip install 'power_store[postgres]'" in out.stdout, out.stderr
