"""The PostgreSQL backend: one writer connection, a small asyncpg pool for reads, and a LISTEN
connection while someone watches (about 3-4 connections per store)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from .._backend import Backend
from .._errors import InvalidArgument, NotSupported, StoreOpenError
from .._export import TABLES, header_line, record_line
from .._listing import SessionFilter, SessionPage
from .._maintenance import CheckpointResult
from .._models import CompactionRow, Lineage, MessageRow, SessionRow, SessionStateRow
from .._options import StoreOptions, check_schema
from .._usage import UsageTotals
from . import _listener, _listing, _paging, _queries
from ._errors import is_connection_lost, map_error
from ._schema import migrate, render
from ._writer import PostgresWriter

if TYPE_CHECKING:
    from .._watch import WatchHub

T = TypeVar("T")

DEFAULT_SCHEMA = "power_store"
_DEFAULT_CONNECT_TIMEOUT = 10.0
_DEFAULT_STATEMENT_CACHE = 100


def split_schema(dsn: str) -> tuple[str, str | None]:
    """*dsn* without power_store's own ``schema`` query parameter, and that parameter's
    value: one string can then name a whole store (``postgresql://host/db?schema=agents``)."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if not schemas:
        return dsn, None
    if len(schemas) > 1:
        raise InvalidArgument(f"the DSN gives schema= {len(schemas)} times")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[0]


def redact(dsn: str) -> str:
    """*dsn* without its password, for messages and repr."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresBackend(Backend):
    name: ClassVar[str] = "postgres"
    writer: PostgresWriter

    def __init__(
        self,
        location: str,
        schema: str,
        options: StoreOptions,
        connect: Callable[[], Awaitable[Any]],
        pool: Any,
        writer: PostgresWriter,
    ) -> None:
        # Use PostgresBackend.open().
        self.location = location
        self.schema = schema
        self._options = options
        self._connect = connect
        self._pool = pool
        self.writer = writer
        self._waits = 0

    @classmethod
    async def open(cls, dsn: str, options: StoreOptions) -> PostgresBackend:
        location = redact(dsn)
        dsn, in_dsn = split_schema(dsn)
        if in_dsn is not None and options.schema is not None and in_dsn != options.schema:
            raise InvalidArgument(
                f"schema {options.schema!r} contradicts the DSN's schema={in_dsn!r}"
            )
        schema = options.schema or (DEFAULT_SCHEMA if in_dsn is None else check_schema(in_dsn))
        settings: dict[str, Any] = {
            "timeout": (
                _DEFAULT_CONNECT_TIMEOUT
                if options.connect_timeout is None
                else options.connect_timeout
            ),
            "statement_cache_size": (
                _DEFAULT_STATEMENT_CACHE
                if options.statement_cache_size is None
                else options.statement_cache_size
            ),
        }

        async def connect() -> Any:
            return await asyncpg.connect(dsn, **settings)

        try:
            conn = await connect()
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            raise StoreOpenError(location, f"cannot connect: {exc}") from exc
        pool = None
        try:
            await migrate(conn, schema)
            pool = await asyncpg.create_pool(
                dsn, min_size=options.readers, max_size=options.readers, **settings
            )
        except BaseException as exc:
            if pool is not None:
                pool.terminate()
            conn.terminate()
            if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.PostgresError)):
                raise StoreOpenError(location, str(exc)) from exc
            raise
        writer = PostgresWriter(
            conn,
            connect,
            schema,
            f"power_store_{schema}",
            location,
            max_batch=options.max_batch,
            max_queue=options.max_queue,
            max_spawn_depth=options.max_spawn_depth,
        )
        writer.start()
        return cls(location, schema, options, connect, pool, writer)

    async def close(self) -> None:
        await self.writer.close()
        await self.writer.aclose_connection()
        try:
            await asyncio.wait_for(self._pool.close(), 10)
        except BaseException:
            self._pool.terminate()
            raise

    @property
    def reader_waits(self) -> int:
        return self._waits

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(connection, schema, *args)`` on a pooled connection. A read that meets a
        dropped connection runs once more on a fresh one: reads have no side effects."""
        for attempt in (1, 2):
            pool = self._pool
            if pool.get_idle_size() == 0:
                self._waits += 1
            try:
                async with pool.acquire() as conn:
                    return await fn(conn, self.schema, *args)
            except Exception as exc:
                if attempt == 1 and is_connection_lost(exc):
                    continue
                raise map_error(exc) from exc
        raise AssertionError("unreachable")

    def get_session(self, session_id: str) -> Awaitable[SessionRow | None]:
        return self._read(_queries.get_session, session_id)

    def list_children(self, parent_session_id: str) -> Awaitable[list[SessionRow]]:
        return self._read(_queries.list_children, parent_session_id)

    def load_active_messages(self, session_id: str) -> Awaitable[list[MessageRow]]:
        return self._read(_queries.load_active_messages, session_id)

    def load_all_messages(self, session_id: str) -> Awaitable[list[MessageRow]]:
        return self._read(_queries.load_all_messages, session_id)

    def get_message(self, session_id: str, seq: int) -> Awaitable[MessageRow | None]:
        return self._read(_queries.get_message, session_id, seq)

    def list_compactions(self, session_id: str) -> Awaitable[list[CompactionRow]]:
        return self._read(_queries.list_compactions, session_id)

    def get_state(self, session_id: str) -> Awaitable[SessionStateRow | None]:
        return self._read(_queries.get_state, session_id)

    def get_lineage(self, session_id: str) -> Awaitable[Lineage | None]:
        return self._read(_queries.get_lineage, session_id)

    def list_sessions(
        self,
        f: SessionFilter,
        order_by: str,
        descending: bool,
        after: tuple[int, str] | None,
        limit: int,
    ) -> Awaitable[SessionPage]:
        return self._read(_listing.list_sessions, f, order_by, descending, after, limit)

    def count_sessions(self, f: SessionFilter) -> Awaitable[int]:
        return self._read(_listing.count_sessions, f)

    def load_messages(
        self,
        session_id: str,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        tail: int | None,
        include_compacted: bool,
    ) -> Awaitable[list[MessageRow]]:
        return self._read(
            _paging.load_messages,
            session_id, after_seq, before_seq, limit, tail, include_compacted,
        )  # fmt: skip

    def usage_totals(self, session_id: str, include_subagents: bool) -> Awaitable[UsageTotals]:
        return self._read(_queries.usage_totals, session_id, include_subagents)

    def messages_after(
        self, session_id: str, after_seq: int, limit: int
    ) -> Awaitable[tuple[bool, list[MessageRow]]]:
        return self._read(_queries.messages_after, session_id, after_seq, limit)

    def export_lines(self, session_id: str, include_subagents: bool) -> Awaitable[list[str]]:
        return self._read(_queries.export_lines, session_id, include_subagents)

    # ── upkeep ────────────────────────────────────────────────────────────

    async def checkpoint(self, mode: str) -> CheckpointResult:
        raise NotSupported(
            self.location,
            "checkpoint() is SQLite's WAL upkeep; PostgreSQL checkpoints its own WAL",
        )

    async def vacuum(self) -> None:
        """``VACUUM (ANALYZE)`` of the store's tables: dead rows of deleted sessions and
        compacted messages become reusable, and the planner's statistics are fresh."""
        await self._read(_vacuum)

    async def backup(self, dest: str) -> None:
        """Every session of the store, as one export file (JSON Lines, the format of
        :meth:`export_session`) read from one snapshot; ``import_session`` on any store
        restores it."""
        await self._read(_backup, dest)

    # ── watch ─────────────────────────────────────────────────────────────

    def change_feed(self, hub: WatchHub) -> Coroutine[Any, Any, None] | None:
        return _listener.follow(
            hub,
            self._connect,
            self.writer.channel,
            lambda: self.writer.backend_pid,
            self._options.watch_poll_interval,
        )


async def _vacuum(conn: Any, schema: str) -> None:
    for _, table, _, _ in TABLES:  # constants: the store's own table names
        await conn.execute(render(f"VACUUM (ANALYZE) {{s}}.{table}", schema))


async def _backup(conn: Any, schema: str, dest: str) -> None:
    async with _queries.snapshot(conn):
        count = await conn.fetchval(render("SELECT COUNT(*) FROM {s}.sessions", schema))
        with open(dest, "w", encoding="utf-8") as out:  # noqa: ASYNC230 - batched below
            chunk = [header_line("*", count)]
            for kind, table, columns, order in TABLES:
                names = [c for c, _ in columns]
                # Sessions first, then each table in session order: every row's session
                # line comes before it, as an import requires.
                sql = f"SELECT {', '.join(names)} FROM {{s}}.{table} ORDER BY session_id"
                if order:
                    sql += f", {order}"
                async for row in conn.cursor(render(sql, schema), prefetch=1000):
                    chunk.append(record_line(kind, names, tuple(row)))
                    if len(chunk) >= 1000:
                        await asyncio.to_thread(out.writelines, chunk)
                        chunk = []
            await asyncio.to_thread(out.writelines, chunk)
            await asyncio.to_thread(os.fsync, out.fileno())
