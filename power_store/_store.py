"""AsyncSessionStore: the public async API over the writer and the reader pool."""

from __future__ import annotations

import asyncio
import enum
import os
import secrets
from collections.abc import AsyncIterable, Awaitable, Generator, Iterable
from types import TracebackType
from typing import Any, Literal

from . import _build, _export, _listing, _maintenance, _stats
from . import _validate as check
from ._backend import Backend, open_backend
from ._errors import InvalidArgument, InvalidCompactionRange, StoreClosed
from ._iterators import ListPager, PagedIterator
from ._listing import Order, SessionPage
from ._maintenance import CheckpointResult, PruneResult
from ._models import (
    DEFAULT_DB_PATH,
    CompactionRow,
    Lineage,
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
    ForkSession,
    ImportSessions,
    Prune,
    RecordCompaction,
    UpdateSessionPrompt,
    WriteOp,
)
from ._options import StoreOptions
from ._sink import Sink
from ._stats import StoreStats
from ._usage import UsageTotals
from ._watch import Watch, WatchHub


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class AsyncSessionStore:
    """The session store for asyncio code. Open it with :meth:`open`."""

    def __init__(self, backend: Backend, options: StoreOptions) -> None:
        # Use AsyncSessionStore.open(); this only wires a backend that is already running.
        self._backend = backend
        self._writer = backend.writer
        #: The file path, ``":memory:"``, or the PostgreSQL DSN without its password.
        self.path = backend.location
        self.options = options
        self._state = _State.OPEN
        self._closed: asyncio.Future[None] | None = None
        self._hub: WatchHub | None = None  # created by the first watch()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._backend.name

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
        return cls(await open_backend(path, options), options)

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
                await self._backend.close()
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

    @property
    def _reads(self) -> Backend:
        """The backend, for a read: refused once the store is closing."""
        self._require_open()
        return self._backend

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
        return await self._reads.get_session(check.session_id(session_id))

    async def list_children(self, parent_session_id: str) -> list[SessionRow]:
        """Direct children of a session, oldest first."""
        return await self._reads.list_children(
            check.session_id(parent_session_id, "parent_session_id")
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
        return await self._reads.load_active_messages(check.session_id(session_id))

    async def load_all_messages(self, session_id: str) -> list[MessageRow]:
        """Every message, compacted ones included, in ``seq`` (allocation) order."""
        return await self._reads.load_all_messages(check.session_id(session_id))

    async def get_message(self, session_id: str, seq: int) -> MessageRow | None:
        return await self._reads.get_message(
            check.session_id(session_id), check.integer(seq, "seq")
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
        return await self._reads.list_compactions(check.session_id(session_id))

    # ── state ─────────────────────────────────────────────────────────────

    async def get_state(self, session_id: str) -> SessionStateRow | None:
        return await self._reads.get_state(check.session_id(session_id))

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
        (ascending walks reach it — unless it was created in the very millisecond of the last
        session already returned and its id sorts before that one's — descending ones do not).
        With ``order_by="updated"`` a
        session updated during the walk moves: it may be returned twice (ascending) or missed
        (descending). Only sessions not updated during the walk are guaranteed exactly once.

        :raises InvalidArgument: a bad filter, limit, or a cursor from another order.
        """
        query = _listing.build_filter(
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
        return await self._reads.list_sessions(query, order, desc, after, size)

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
        query = _listing.build_filter(
            status=status, kind=kind, parent_session_id=parent_session_id,
            roots_only=roots_only, forked_from=forked_from, metadata=metadata,
            created_after=created_after, created_before=created_before,
            updated_after=updated_after, updated_before=updated_before,
        )  # fmt: skip
        return await self._reads.count_sessions(query)

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
        return await self._reads.load_messages(
            check.session_id(session_id),
            check.optional_integer(after_seq, "after_seq"),
            check.optional_integer(before_seq, "before_seq"),
            check.optional_integer(limit, "limit", minimum=1),
            check.optional_integer(tail, "tail", minimum=1),
            include_compacted,
        )

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
        return await self._reads.usage_totals(check.session_id(session_id), include_subagents)

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
        return await self._reads.get_lineage(check.session_id(session_id))

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
            self._hub = WatchHub(self._backend.change_feed)
            self._writer.on_commit = self._hub.on_commit
        return Watch(self._hub, self._messages_after, sid, after)

    def _messages_after(
        self, session_id: str, after_seq: int, limit: int
    ) -> Awaitable[tuple[bool, list[MessageRow]]]:
        return self._reads.messages_after(session_id, after_seq, limit)

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
        self._require_open()
        return await self._backend.checkpoint(mode)

    async def vacuum(self) -> None:
        """Rebuild the database file to give free pages back to the disk. Writes wait while
        it runs (it rewrites the whole file); prefer :meth:`prune` first, then this, off-peak."""
        self._require_open()
        await self._backend.vacuum()

    async def backup(self, dest: str | os.PathLike[str]) -> None:
        """Write a consistent copy of the database to the new file *dest* while the store
        keeps running: the copy is read on a reader connection from one WAL snapshot, so
        writes go on meanwhile (on ``:memory:`` it runs between two write batches).

        :raises InvalidArgument: *dest* exists already (it is never overwritten).
        """
        target = _maintenance.create_backup_file(dest)
        try:
            await self._reads.backup(target)
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
        # The store is checked when the first page is read, as for every read.
        return ListPager(lambda: self._reads.export_lines(sid, include_subagents))

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
        op = ImportSessions(ids, rows, on_conflict)
        if on_conflict == "replace" and self._hub is not None:
            with self._hub.replacing(ids):  # their watches end: seqs start again
                imported: list[str] = await self._write(op)
        else:
            imported = await self._write(op)
        return imported

    async def stats(self) -> StoreStats:
        """Counters of the writer, the readers and the watchers, for logs and graphs."""
        return _stats.collect(
            self._writer,
            self._backend.reader_waits,
            0 if self._hub is None else self._hub.watchers,
        )

    def sink(self, session_id: str) -> Sink:
        """A write handle for one session whose methods return as soon as the write is queued
        (see :class:`Sink`): ``fut = await sink.append_message(...)``; ``await sink.flush()``."""
        return Sink(self, check.session_id(session_id))


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
