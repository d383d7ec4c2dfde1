"""The SQLite backend: one writer connection, a pool of read-only WAL connections, and a
checkpointer, all aiosqlite connections each with its own thread."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import aiosqlite

from .._backend import Backend
from .._errors import StoreOpenError
from .._listing import SessionFilter, SessionPage
from .._maintenance import CheckpointResult
from .._models import (
    CompactionRow,
    Lineage,
    MessageRow,
    SessionRow,
    SessionStateRow,
)
from .._options import StoreOptions
from .._usage import UsageTotals
from . import _connection, _export, _listing, _maintenance, _paging, _queries, _schema, _usage
from ._checkpointer import Checkpointer
from ._errors import map_error
from ._files import MEMORY, resolve_path
from ._readers import ReaderPool
from ._writer import SqliteWriter

if TYPE_CHECKING:
    from .._watch import WatchHub

T = TypeVar("T")

logger = logging.getLogger("power_store")

#: Committed writes between background checkpoint passes.
CHECKPOINT_EVERY_OPS = 500


class SqliteBackend(Backend):
    name: ClassVar[str] = "sqlite"

    def __init__(
        self,
        path: str,
        options: StoreOptions,
        writer_conn: aiosqlite.Connection,
        writer: SqliteWriter,
        readers: ReaderPool,
        checkpointer: Checkpointer | None,
    ) -> None:
        # Use SqliteBackend.open(); this only wires parts that are already running.
        self.location = path
        self._options = options
        #: PRAGMA data_version as the watch poller last read it; kept between pollers.
        self._data_version: int | None = None
        self._writer_conn = writer_conn
        self.writer = writer
        self._readers = readers
        self._checkpointer = checkpointer

    @classmethod
    async def open(cls, target: str, options: StoreOptions) -> SqliteBackend:
        resolved = resolve_path(target)
        busy_ms = int((5.0 if options.busy_timeout is None else options.busy_timeout) * 1000)
        try:
            writer_conn = await _connection.connect(resolved)
        except sqlite3.Error as exc:
            raise StoreOpenError(resolved, str(exc)) from exc
        readers: list[aiosqlite.Connection] = []
        checkpointer: Checkpointer | None = None
        try:
            await _connection.run(
                writer_conn,
                _prepare,
                resolved,
                (options.synchronous or "normal").upper(),
                busy_ms,
            )
            if resolved == MEMORY:
                # A private in-memory database has no WAL and no second connection can see
                # it; reads share the writer's connection (and its thread) instead.
                pool = ReaderPool([writer_conn], resolved, owned=False)
            else:
                uri = Path(resolved).as_uri() + "?mode=ro"

                async def open_reader() -> aiosqlite.Connection:
                    conn = await _connection.connect(uri, uri=True)
                    try:
                        await _connection.run(conn, _schema.configure_reader, busy_ms)
                    except BaseException:
                        await conn.close()
                        raise
                    return conn

                for _ in range(options.readers):
                    readers.append(await open_reader())
                pool = ReaderPool(readers, resolved, owned=True, reopen=open_reader)
                checkpoint_conn = await _connection.connect(resolved)
                checkpointer = Checkpointer(checkpoint_conn, every_ops=CHECKPOINT_EVERY_OPS)
                await _connection.run(checkpoint_conn, _schema.configure_reader, busy_ms)
        except BaseException as exc:
            if checkpointer is not None:
                await checkpointer.close()
            for conn in [*readers, writer_conn]:
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreOpenError(resolved, str(exc)) from exc
            raise
        writer = SqliteWriter(
            writer_conn,
            resolved,
            max_batch=options.max_batch,
            max_queue=options.max_queue,
            max_spawn_depth=options.max_spawn_depth,
            checkpointer=checkpointer,
        )
        writer.start()
        if checkpointer is not None:
            checkpointer.start()
        return cls(resolved, options, writer_conn, writer, pool, checkpointer)

    async def close(self) -> None:
        await self.writer.close()
        if self._checkpointer is not None:
            await self._checkpointer.close()
        await self._readers.close()
        await self._writer_conn.close()

    @property
    def reader_waits(self) -> int:
        return self._readers.waits

    async def on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` on the writer connection between batches."""
        try:
            return await _connection.run(self._writer_conn, fn, *args)
        except sqlite3.Error as exc:
            raise map_error(exc) from exc

    # ── reads: each one callable on a reader's thread ─────────────────────

    def get_session(self, session_id: str) -> Awaitable[SessionRow | None]:
        return self._readers.run(_queries.get_session, session_id)

    def list_children(self, parent_session_id: str) -> Awaitable[list[SessionRow]]:
        return self._readers.run(_queries.list_children, parent_session_id)

    def load_active_messages(self, session_id: str) -> Awaitable[list[MessageRow]]:
        return self._readers.run(_queries.load_active_messages, session_id)

    def load_all_messages(self, session_id: str) -> Awaitable[list[MessageRow]]:
        return self._readers.run(_queries.load_all_messages, session_id)

    def get_message(self, session_id: str, seq: int) -> Awaitable[MessageRow | None]:
        return self._readers.run(_queries.get_message, session_id, seq)

    def list_compactions(self, session_id: str) -> Awaitable[list[CompactionRow]]:
        return self._readers.run(_queries.list_compactions, session_id)

    def get_state(self, session_id: str) -> Awaitable[SessionStateRow | None]:
        return self._readers.run(_queries.get_state, session_id)

    def get_lineage(self, session_id: str) -> Awaitable[Lineage | None]:
        return self._readers.run(_queries.get_lineage, session_id)

    def list_sessions(
        self,
        f: SessionFilter,
        order_by: str,
        descending: bool,
        after: tuple[int, str] | None,
        limit: int,
    ) -> Awaitable[SessionPage]:
        return self._readers.run(_listing.list_sessions, f, order_by, descending, after, limit)

    def count_sessions(self, f: SessionFilter) -> Awaitable[int]:
        return self._readers.run(_listing.count_sessions, f)

    def load_messages(
        self,
        session_id: str,
        after_seq: int | None,
        before_seq: int | None,
        limit: int | None,
        tail: int | None,
        include_compacted: bool,
    ) -> Awaitable[list[MessageRow]]:
        return self._readers.run(
            _paging.load_messages,
            session_id, after_seq, before_seq, limit, tail, include_compacted,
        )  # fmt: skip

    def usage_totals(self, session_id: str, include_subagents: bool) -> Awaitable[UsageTotals]:
        return self._readers.run(_usage.usage_totals, session_id, include_subagents)

    def messages_after(
        self, session_id: str, after_seq: int, limit: int
    ) -> Awaitable[tuple[bool, list[MessageRow]]]:
        return self._readers.run(_queries.messages_after, session_id, after_seq, limit)

    def export_lines(self, session_id: str, include_subagents: bool) -> Awaitable[list[str]]:
        return self._readers.run(_export.export_lines, session_id, include_subagents)

    # ── upkeep ────────────────────────────────────────────────────────────

    async def checkpoint(self, mode: str) -> CheckpointResult:
        return await self.on_writer(_maintenance.checkpoint, mode)

    async def vacuum(self) -> None:
        await self.on_writer(_maintenance.vacuum)

    async def backup(self, dest: str) -> None:
        await self._readers.run(_maintenance.backup, dest)

    # ── watch ─────────────────────────────────────────────────────────────

    def change_feed(self, hub: WatchHub) -> Coroutine[Any, Any, None] | None:
        if self.location == MEMORY:  # no other connection can write a private memory database
            return None
        return self._poll_data_version(hub)

    async def _poll_data_version(self, hub: WatchHub) -> None:
        """``PRAGMA data_version`` on the writer connection changes only when *another*
        connection commits: poll it while anyone waits, and wake every watcher when it moves."""
        # No baseline of its own: a watcher may have read before this poller's first reading
        # (which waits for the writer connection, maybe behind a long batch), and a commit in
        # between would be folded into it. The version compared against was read before any
        # current watcher last read (it is kept from earlier pollers; none at first, so the
        # first reading wakes everyone: at worst one read too many per watcher).
        interval = self._options.watch_poll_interval
        try:
            while hub.waiting and not hub.closed:
                current = await self.on_writer(_queries.data_version)
                if current != self._data_version:
                    self._data_version = current
                    hub.wake_all()
                await asyncio.sleep(interval)
        except Exception as exc:
            # The store closing under us, or its connection failing: watchers still wake on
            # this store's own commits, and a new watcher starts a new poller.
            logger.debug("power_store watch poller stopped: %r", exc)


def _prepare(conn: sqlite3.Connection, path: str, synchronous: str, busy_ms: int) -> None:
    _schema.configure_writer(conn, synchronous=synchronous, busy_timeout_ms=busy_ms)
    _schema.migrate(conn, path)
