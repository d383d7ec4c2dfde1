"""AsyncSessionStore: the public async API over the writer and the reader pool."""

from __future__ import annotations

import asyncio
import enum
import functools
import os
import secrets
import sqlite3
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Generator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import aiosqlite

from . import (
    _build,
    _connection,
    _export,
    _fork,
    _listing,
    _maintenance,
    _paging,
    _queries,
    _schema,
    _stats,
    _usage,
    _watch,
)
from . import _validate as check
from ._checkpointer import Checkpointer
from ._errors import (
    InvalidArgument,
    InvalidCompactionRange,
    StoreClosed,
    StoreOpenError,
    map_error,
)
from ._fork import ForkSession, Lineage
from ._iterators import ListPager, PagedIterator
from ._listing import Order, SessionPage
from ._maintenance import CheckpointResult, Prune, PruneResult
from ._models import (
    DEFAULT_DB_PATH,
    CompactionRow,
    MessageRow,
    SessionKind,
    SessionRow,
    SessionStateRow,
    SessionStatus,
    SubagentLifecycle,
)
from ._ops import (
    ArchiveSession,
    CloseSession,
    CreateSession,
    RecordCompaction,
    UpdateSessionPrompt,
    WriteOp,
)
from ._options import MEMORY, StoreOptions, resolve_path
from ._readers import ReaderPool
from ._sink import Sink
from ._stats import StoreStats
from ._usage import UsageTotals
from ._watch import Watch, WatchHub
from ._writer import Writer

T = TypeVar("T")

#: Committed writes between background checkpoint passes.
CHECKPOINT_EVERY_OPS = 500


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class AsyncSessionStore:
    """The session store for asyncio code. Open it with :meth:`open`."""

    def __init__(
        self,
        path: str,
        options: StoreOptions,
        writer_conn: aiosqlite.Connection,
        writer: Writer,
        readers: ReaderPool,
        checkpointer: Checkpointer | None,
    ) -> None:
        # Use AsyncSessionStore.open(); this only wires parts that are already running.
        self.path = path
        self.options = options
        self._writer_conn = writer_conn
        self._writer = writer
        self._readers = readers
        self._checkpointer = checkpointer
        self._state = _State.OPEN
        self._closed: asyncio.Future[None] | None = None
        self._hub: WatchHub | None = None  # created by the first watch()

    # ── lifecycle ─────────────────────────────────────────────────────────

    @classmethod
    def open(cls, path: str | os.PathLike[str] = DEFAULT_DB_PATH, **options: Any) -> _Opener:
        """Open (creating or migrating) the database at *path*.

        Use ``store = await AsyncSessionStore.open(path)`` or
        ``async with AsyncSessionStore.open(path) as store:``. Options: see :class:`StoreOptions`.

        :raises StoreOpenError: the path is a directory, not a SQLite file, or not writable.
        :raises SchemaTooNew: the file was written by a newer power_store.
        """
        try:
            opts = StoreOptions(**options)
        except TypeError as exc:
            raise InvalidArgument(str(exc)) from None
        return _Opener(cls, path, opts)

    @classmethod
    async def _open(cls, path: str | os.PathLike[str], options: StoreOptions) -> AsyncSessionStore:
        resolved = resolve_path(path)
        busy_ms = int(options.busy_timeout * 1000)
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
                options.synchronous.upper(),
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
        writer = Writer(
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
        """Let queued writes commit, wait for running reads, then close every connection.

        Idempotent; concurrent calls all wait for the same close.
        """
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            self._state = _State.CLOSING
            try:
                if self._hub is not None:
                    await self._hub.close()
                await self._writer.close()
                if self._checkpointer is not None:
                    await self._checkpointer.close()
                await self._readers.close()
                await self._writer_conn.close()
            finally:
                self._state = _State.CLOSED
                self._closed.set_result(None)
        await asyncio.shield(self._closed)

    @property
    def closed(self) -> bool:
        return self._state is not _State.OPEN

    async def __aenter__(self) -> AsyncSessionStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncSessionStore {self.path!r} {self._state.value}>"

    def _require_open(self) -> None:
        if self._state is not _State.OPEN:
            raise StoreClosed(self.path, self._state.value)

    # Plain functions returning what to await: one coroutine frame less per call.
    def _write(self, op: WriteOp) -> Awaitable[Any]:
        self._require_open()
        return self._writer.submit(op)

    def _read(self, fn: Callable[..., T], *args: Any) -> Coroutine[Any, Any, T]:
        self._require_open()
        return self._readers.run(fn, *args)

    # ── sessions ──────────────────────────────────────────────────────────

    async def create_session(
        self,
        *,
        system_prompt: str | None = None,
        model: str | None = None,
        config: dict[str, Any] | None = None,
        parent_session_id: str | None = None,
        spawn_tool_call_id: str | None = None,
        kind: SessionKind = SessionKind.ROOT,
        lifecycle: SubagentLifecycle = SubagentLifecycle.EPHEMERAL,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> str:
        """Create a session and its state row; return its id (``sess_`` + 24 hex by default).

        With *parent_session_id* the session is a subagent one level below its parent.

        :raises SessionNotFound: the parent does not exist.
        :raises SpawnDepthExceeded: the parent is already at the maximum spawn depth.
        :raises SessionExists: *session_id* is taken.
        """
        if session_id is None:
            session_id = "sess_" + secrets.token_hex(12)
        op = CreateSession(
            session_id=check.session_id(session_id),
            system_prompt=check.text(system_prompt, "system_prompt"),
            model=check.text(model, "model"),
            config_json=check.json_object(config, "config"),
            parent_session_id=(
                None if parent_session_id is None
                else check.session_id(parent_session_id, "parent_session_id")
            ),
            spawn_tool_call_id=check.text(spawn_tool_call_id, "spawn_tool_call_id"),
            kind=check.enum_value(SessionKind, kind, "kind"),
            lifecycle=check.enum_value(SubagentLifecycle, lifecycle, "lifecycle"),
            metadata_json=check.json_object(metadata, "metadata"),
        )  # fmt: skip
        result: str = await self._write(op)
        return result

    async def get_session(self, session_id: str) -> SessionRow | None:
        return await self._read(_queries.get_session, check.session_id(session_id))

    async def list_children(self, parent_session_id: str) -> list[SessionRow]:
        """Direct children of a session, oldest first."""
        return await self._read(
            _queries.list_children, check.session_id(parent_session_id, "parent_session_id")
        )

    async def archive_session(self, session_id: str) -> None:
        """Mark a session archived (it keeps all its data). :raises SessionNotFound:"""
        await self._write(ArchiveSession(check.session_id(session_id)))

    async def close_session(self, session_id: str, *, cascade: bool = True) -> int:
        """Delete a session's rows in every table; return how many sessions were removed.

        With *cascade* (the default) every descendant reached through ephemeral or linked
        children goes too; detached children survive as roots. Without it only this session is
        removed and its children become roots. An unknown id removes nothing and returns 0.
        """
        if not isinstance(cascade, bool):
            raise InvalidArgument(f"cascade must be a bool, got {cascade!r}")
        result: int = await self._write(CloseSession(check.session_id(session_id), cascade))
        return result

    async def update_session_prompt(self, session_id: str, system_prompt: str | None) -> None:
        """Replace a session's system prompt. :raises SessionNotFound:"""
        await self._write(
            UpdateSessionPrompt(
                check.session_id(session_id), check.text(system_prompt, "system_prompt")
            )
        )

    # ── messages ──────────────────────────────────────────────────────────

    async def append_message(
        self,
        session_id: str,
        *,
        role: str,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        name: str | None = None,
        round_index: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Append one message and return its ``seq`` (1, 2, 3 … per session).

        :raises SessionNotFound: unknown session.
        """
        op = _build.append_message(
            session_id, role, content, tool_calls, tool_call_id, name, round_index, meta
        )
        result: int = await self._write(op)
        return result

    async def load_active_messages(self, session_id: str) -> list[MessageRow]:
        """The active history in logical order: a compaction note stands where the first
        message it replaced stood."""
        return await self._read(_queries.load_active_messages, check.session_id(session_id))

    async def load_all_messages(self, session_id: str) -> list[MessageRow]:
        """Every message, compacted ones included, in ``seq`` (allocation) order."""
        return await self._read(_queries.load_all_messages, check.session_id(session_id))

    async def get_message(self, session_id: str, seq: int) -> MessageRow | None:
        return await self._read(
            _queries.get_message, check.session_id(session_id), check.integer(seq, "seq")
        )

    # ── compaction ────────────────────────────────────────────────────────

    async def record_compaction(
        self,
        session_id: str,
        *,
        from_seq: int,
        to_seq: int,
        note_content: str,
        before_tokens: int | None,
        after_tokens: int | None,
        round_index: int | None,
        note_meta: dict[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Mark messages ``from_seq..to_seq`` compacted out and add a ``compact_note`` system
        message in their place; return ``(compact_seq, note_seq)``.

        :raises InvalidCompactionRange: the range is reversed, past the last seq, or holds no
            active message.
        """
        sid = check.session_id(session_id)
        first = check.integer(from_seq, "from_seq", minimum=1)
        last = check.integer(to_seq, "to_seq", minimum=1)
        if first > last:
            raise InvalidCompactionRange(sid, from_seq, to_seq, "from_seq is after to_seq")
        before = check.optional_integer(before_tokens, "before_tokens")
        after = check.optional_integer(after_tokens, "after_tokens")
        rnd = check.optional_integer(round_index, "round_index")
        meta = dict(check.json_dict(note_meta, "note_meta"))
        meta.update(
            compacted_at_round=rnd,
            from_seq=first,
            to_seq=last,
            original_tokens=before,
            summary_tokens=after,
        )
        op = RecordCompaction(
            sid,
            first,
            last,
            check.required_text(note_content, "note_content"),
            before,
            after,
            rnd,
            check.encode(meta),
        )
        result: tuple[int, int] = await self._write(op)
        return result

    async def list_compactions(self, session_id: str) -> list[CompactionRow]:
        return await self._read(_queries.list_compactions, check.session_id(session_id))

    # ── state ─────────────────────────────────────────────────────────────

    async def get_state(self, session_id: str) -> SessionStateRow | None:
        return await self._read(_queries.get_state, check.session_id(session_id))

    async def set_round_index(self, session_id: str, round_index: int) -> None:
        """:raises SessionNotFound:"""
        await self._write(_build.set_round_index(session_id, round_index))

    async def set_pending(self, session_id: str, pending: dict[str, Any] | None) -> None:
        """Record unresolved tool calls so a crashed agent can resume; ``None`` or ``{}``
        clears them. :raises SessionNotFound:"""
        await self._write(_build.set_pending(session_id, pending))

    # ── usage ─────────────────────────────────────────────────────────────

    async def record_usage(
        self,
        session_id: str,
        *,
        round_index: int,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None,
        model: str | None = None,
    ) -> None:
        """Record (or replace) the token usage of one round. :raises SessionNotFound:"""
        await self._write(
            _build.record_usage(
                session_id, round_index, prompt_tokens, completion_tokens, total_tokens, model
            )
        )

    # ══ beyond the reference: listing, paging, fork, watch, upkeep, export, stats, sink ══

    async def _enqueue(self, op: WriteOp) -> asyncio.Future[Any]:
        self._require_open()
        return await self._writer.enqueue(op)

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        """Run *fn* on the writer connection between two batches."""
        self._require_open()
        try:
            return await _connection.run(self._writer_conn, fn, *args)
        except sqlite3.Error as exc:
            raise map_error(exc) from exc

    async def list_sessions(
        self,
        *,
        status: SessionStatus | str | None = None,
        kind: SessionKind | str | None = None,
        parent_session_id: str | None = None,
        roots_only: bool = False,
        forked_from: str | None = None,
        metadata: dict[str, Any] | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        updated_after: int | None = None,
        updated_before: int | None = None,
        order_by: Order = "created",
        descending: bool = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page of sessions matching every filter given; follow ``page.next_cursor``.

        *metadata* matches top-level keys by equality (str, int, float, bool or None values);
        time ranges are ``[after, before)`` in epoch milliseconds. Sessions are ordered by
        ``(created_at, session_id)`` or, with ``order_by="updated"``, ``(updated_at,
        session_id)``, ascending unless *descending*.

        Walking pages while sessions are written: with ``order_by="created"`` every session
        that exists when the walk starts and is not deleted during it is returned exactly once,
        however often it is updated; a session created during the walk is returned at most once
        (ascending walks reach it, descending ones do not). With ``order_by="updated"`` a
        session updated during the walk moves: it may be returned twice (ascending) or missed
        (descending). Only sessions not updated during the walk are guaranteed exactly once.

        :raises InvalidArgument: a bad filter, limit, or a cursor from another order.
        """
        query = _listing.build_query(
            status=status, kind=kind, parent_session_id=parent_session_id,
            roots_only=roots_only, forked_from=forked_from, metadata=metadata,
            created_after=created_after, created_before=created_before,
            updated_after=updated_after, updated_before=updated_before,
        )  # fmt: skip
        order, desc = _listing.check_order(order_by, descending)
        size = check.integer(limit, "limit", minimum=1)
        if size > _listing.MAX_LIMIT:
            raise InvalidArgument(f"limit must be <= {_listing.MAX_LIMIT}, got {limit}")
        after = None if cursor is None else _listing.decode_cursor(cursor, order, desc)
        page: SessionPage = await self._read(
            _listing.list_sessions, query, order, desc, after, size
        )
        return page

    async def count_sessions(
        self,
        *,
        status: SessionStatus | str | None = None,
        kind: SessionKind | str | None = None,
        parent_session_id: str | None = None,
        roots_only: bool = False,
        forked_from: str | None = None,
        metadata: dict[str, Any] | None = None,
        created_after: int | None = None,
        created_before: int | None = None,
        updated_after: int | None = None,
        updated_before: int | None = None,
    ) -> int:
        """How many sessions :meth:`list_sessions` would walk with the same filters."""
        query = _listing.build_query(
            status=status, kind=kind, parent_session_id=parent_session_id,
            roots_only=roots_only, forked_from=forked_from, metadata=metadata,
            created_after=created_after, created_before=created_before,
            updated_after=updated_after, updated_before=updated_before,
        )  # fmt: skip
        count: int = await self._read(_listing.count_sessions, query)
        return count

    async def load_messages(
        self,
        session_id: str,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int | None = None,
        tail: int | None = None,
        include_compacted: bool = False,
    ) -> list[MessageRow]:
        """A window of a session's history, in the order of :meth:`load_active_messages`
        (or, with *include_compacted*, of :meth:`load_all_messages`).

        *after_seq* / *before_seq* bound the window (exclusive) at the place of those messages
        in that order. *limit* takes the first messages of the range, *tail* the last ones.
        A window never splits a tool-call group (an assistant message with ``tool_calls`` and
        the tool results after it): it widens past its bounds to hold the whole group, so it
        may return a few more messages than asked for, and never starts with a tool result
        whose call precedes it.
        """
        if limit is not None and tail is not None:
            raise InvalidArgument("limit and tail exclude each other")
        if not isinstance(include_compacted, bool):
            raise InvalidArgument(f"include_compacted must be a bool, got {include_compacted!r}")
        rows: list[MessageRow] = await self._read(
            _paging.load_messages,
            check.session_id(session_id),
            check.optional_integer(after_seq, "after_seq"),
            check.optional_integer(before_seq, "before_seq"),
            check.optional_integer(limit, "limit", minimum=1),
            check.optional_integer(tail, "tail", minimum=1),
            include_compacted,
        )
        return rows

    async def append_messages(
        self, session_id: str, messages: Iterable[dict[str, Any]]
    ) -> list[int]:
        """Append several messages in one atomic write (all commit, or none); return their
        seqs. Each dict takes the keyword arguments of :meth:`append_message`.

        :raises SessionNotFound: unknown session (nothing is written).
        """
        seqs: list[int] = await self._write(_build.append_messages(session_id, messages))
        return seqs

    async def usage_totals(
        self, session_id: str, *, include_subagents: bool = False
    ) -> UsageTotals:
        """Token usage summed over a session's rounds, in total and per model; with
        *include_subagents*, over the session and every descendant (one recursive query).

        :raises SessionNotFound: unknown session.
        """
        if not isinstance(include_subagents, bool):
            raise InvalidArgument(f"include_subagents must be a bool, got {include_subagents!r}")
        totals: UsageTotals = await self._read(
            _usage.usage_totals, check.session_id(session_id), include_subagents
        )
        return totals

    async def fork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        new_session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Create a new root session holding a copy of *session_id*'s active history up to
        and including message *at_seq* (default: all of it); return the new id.

        The fork keeps the copied messages' seqs, gets the state they imply and records its
        lineage (see :meth:`get_lineage`); afterwards the two sessions evolve independently.
        *metadata* replaces the source's metadata in the fork.

        :raises SessionNotFound: unknown source.
        :raises InvalidForkPoint: *at_seq* is not an active message of the source.
        :raises SessionExists: *new_session_id* is taken.
        """
        op = ForkSession(
            check.session_id(session_id),
            check.optional_integer(at_seq, "at_seq", minimum=1),
            check.session_id(
                "sess_" + secrets.token_hex(12) if new_session_id is None else new_session_id,
                "new_session_id",
            ),
            None if metadata is None else check.json_object(metadata, "metadata"),
        )
        new: str = await self._write(op)
        return new

    async def get_lineage(self, session_id: str) -> Lineage | None:
        """Where a session was forked from (``None`` fields if it is no fork; ``None`` for an
        unknown session)."""
        lineage: Lineage | None = await self._read(_fork.get_lineage, check.session_id(session_id))
        return lineage

    def watch(self, session_id: str, *, after_seq: int = 0) -> Watch:
        """Every message of the session with a seq above *after_seq*, in seq order, as soon
        as it commits: ``async for message in store.watch(sid): ...``.

        The feed includes messages later compacted out and compaction notes (check
        ``message.state``). It ends when the session is deleted or the store starts closing;
        call ``aclose()`` (or break out) to stop early.

        :raises SessionNotFound: (on the first iteration) the session does not exist.
        """
        sid = check.session_id(session_id)
        after = check.integer(after_seq, "after_seq")
        self._require_open()
        if self._hub is None:
            poll = None
            if self.path != MEMORY:  # no other process can write a private in-memory database
                poll = functools.partial(self._on_writer, _watch.data_version)
            self._hub = WatchHub(poll, self.options.watch_poll_interval)
            self._writer.on_commit = self._hub.on_commit
        return Watch(self._hub, self._read, sid, after)

    async def prune(
        self,
        *,
        archived_before: int | None = None,
        orphaned_subagents: bool = False,
        compacted_before: int | None = None,
    ) -> PruneResult:
        """Delete what retention no longer needs, in one transaction.

        * *archived_before* (epoch ms): archived sessions whose ``updated_at`` (the time they
          were archived, or last written after) is older — with their non-detached descendants,
          as :meth:`close_session` would;
        * *orphaned_subagents*: ephemeral subagents whose parent is gone or unlinked;
        * *compacted_before* (epoch ms): compacted-out original messages created earlier.
          Compaction notes and the ``compactions`` audit rows are kept.
        """
        if not isinstance(orphaned_subagents, bool):
            raise InvalidArgument(f"orphaned_subagents must be a bool, got {orphaned_subagents!r}")
        result: PruneResult = await self._write(
            Prune(
                check.optional_integer(archived_before, "archived_before"),
                orphaned_subagents,
                check.optional_integer(compacted_before, "compacted_before"),
            )
        )
        return result

    async def checkpoint(self, mode: str = "passive") -> CheckpointResult:
        """Copy the WAL back into the database file (``PRAGMA wal_checkpoint``); *mode* is
        ``"passive"``, ``"full"``, ``"restart"`` or ``"truncate"`` (which also empties the WAL
        file). Runs between two write batches."""
        if mode not in _maintenance.CHECKPOINT_MODES:
            raise InvalidArgument(
                f"mode must be one of {_maintenance.CHECKPOINT_MODES}, got {mode!r}"
            )
        return await self._on_writer(_maintenance.checkpoint, mode)

    async def vacuum(self) -> None:
        """Rebuild the database file to give free pages back to the disk. Writes wait while
        it runs (it rewrites the whole file); prefer :meth:`prune` first, then this, off-peak."""
        await self._on_writer(_maintenance.vacuum)

    async def backup(self, dest: str | os.PathLike[str]) -> None:
        """Write a consistent copy of the database to the new file *dest* while the store
        keeps running: the copy is read on a reader connection from one WAL snapshot, so
        writes go on meanwhile (on ``:memory:`` it runs between two write batches).

        :raises InvalidArgument: *dest* exists already (it is never overwritten).
        """
        target = _maintenance.create_backup_file(dest)
        try:
            await self._read(_maintenance.backup, target)
        except BaseException:
            os.unlink(target)
            raise

    def export_session(
        self, session_id: str, *, include_subagents: bool = True
    ) -> PagedIterator[str]:
        """The session (and its subagents' sessions) as JSON Lines, each line ending in
        ``"\\n"``: a header, then sessions, messages, compactions, usage and state rows,
        read from one snapshot. ``async for line in store.export_session(sid)``.

        :raises SessionNotFound: (on the first iteration) unknown session.
        """
        sid = check.session_id(session_id)
        if not isinstance(include_subagents, bool):
            raise InvalidArgument(f"include_subagents must be a bool, got {include_subagents!r}")
        fetch = functools.partial(self._read, _export.export_lines, sid, include_subagents)
        return ListPager(fetch)

    async def import_session(
        self,
        lines: Iterable[str] | AsyncIterable[str],
        *,
        on_conflict: Literal["error", "replace"] = "error",
    ) -> list[str]:
        """Recreate the sessions of an :meth:`export_session` export, exactly and atomically;
        return their ids. With ``on_conflict="replace"`` sessions that exist already are
        replaced (their rows only); with ``"error"`` nothing is written. *lines* may be an
        async iterable, such as another store's ``export_session()``.

        :raises InvalidArgument: the lines are not a valid export.
        :raises SessionExists: a session exists and *on_conflict* is ``"error"``.
        """
        if on_conflict not in _export.CONFLICT_POLICIES:
            raise InvalidArgument(f"on_conflict must be 'error' or 'replace', got {on_conflict!r}")
        if isinstance(lines, AsyncIterable):
            lines = [line async for line in lines]
        ids, rows = _export.parse_lines(lines)
        imported: list[str] = await self._write(_export.ImportSessions(ids, rows, on_conflict))
        return imported

    async def stats(self) -> StoreStats:
        """Counters of the writer, the readers and the watchers, for logs and graphs."""
        return _stats.collect(
            self._writer, self._readers, 0 if self._hub is None else self._hub.watchers
        )

    def sink(self, session_id: str) -> Sink:
        """A write handle for one session whose methods return as soon as the write is queued
        (see :class:`Sink`): ``fut = await sink.append_message(...)``; ``await sink.flush()``."""
        return Sink(self, check.session_id(session_id))


def _prepare(conn: sqlite3.Connection, path: str, synchronous: str, busy_ms: int) -> None:
    _schema.configure_writer(conn, synchronous=synchronous, busy_timeout_ms=busy_ms)
    _schema.migrate(conn, path)


class _Opener:
    """What :meth:`AsyncSessionStore.open` returns: await it, or use it with ``async with``."""

    def __init__(
        self, cls: type[AsyncSessionStore], path: str | os.PathLike[str], options: StoreOptions
    ) -> None:
        self._cls = cls
        self._path = path
        self._options = options
        self._store: AsyncSessionStore | None = None

    def __await__(self) -> Generator[Any, None, AsyncSessionStore]:
        return self._cls._open(self._path, self._options).__await__()

    async def __aenter__(self) -> AsyncSessionStore:
        self._store = await self
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._store is not None
        await self._store.close()
