"""One group-commit transaction on PostgreSQL, with the same semantics as the SQLite batch.

A batch of ops runs as::

    BEGIN
    SELECT … FROM session_state WHERE session_id = ANY(…) ORDER BY session_id FOR UPDATE
    … rare ops, one or two statements each …
    one statement: next_seq / round_index / pending_json, updated_at, usage, messages,
                   the batch id, pg_notify
    COMMIT

so a batch of plain appends costs four round trips whatever its size. The rows are locked in
session-id order because writers on several hosts that lock in different orders deadlock.
``next_seq`` is read under that lock, seqs are handed out in queue order in Python, and
everything frequent (appends, round index, pending, usage, ``updated_at``) is buffered and
written set-based (``unnest``) when the batch ends, or earlier when a rarer op has to read
what they wrote (the SQLite batch's ``flush``).

Ops check their input before writing anything, so a rejected op (unknown session, bad range,
session exists) fails alone without aborting the transaction. Anything unexpected (a value
PostgreSQL refuses, a unique violation from a concurrent creator) rolls the batch back and
replays it with a SAVEPOINT around each op, so only the culprit fails. A deadlock or
serialization failure retries the whole batch, a bounded number of times. Handlers read only the
ops' attributes; the SQLite ``apply`` methods are not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from .._errors import (
    DatabaseError,
    InvalidArgument,
    InvalidCompactionRange,
    InvalidForkPoint,
    SessionExists,
    SessionNotFound,
    SpawnDepthExceeded,
)
from .._export import TABLES as _TABLES
from .._maintenance import PruneResult
from .._models import MessageState, SessionKind, SessionStatus, SubagentLifecycle
from .._ops import (
    AppendMessage,
    AppendMessages,
    ArchiveSession,
    CloseSession,
    CreateSession,
    ForkSession,
    ImportSessions,
    Prune,
    RecordCompaction,
    RecordUsage,
    SetPending,
    SetRoundIndex,
    UpdateSessionPrompt,
    WriteOp,
)
from ._errors import ConnectionLost, is_connection_lost, is_environmental, is_retryable, map_error
from ._schema import render

#: (error, value) per op, in submission order.
Outcome = tuple[BaseException | None, Any]

#: Whole-batch retries after a deadlock or serialization failure.
RETRIES = 8
#: NOTIFY refuses payloads of 8,000 bytes or more; past this a batch wakes every watcher.
NOTIFY_PAYLOAD_LIMIT = 7900

_LOCK = (
    "SELECT session_id, next_seq FROM {s}.session_state WHERE session_id = ANY($1::text[]) "
    "ORDER BY session_id FOR UPDATE"
)
# A session the batch did not lock up front (created, forked or imported by an earlier op).
_LOOKUP = "SELECT next_seq FROM {s}.session_state WHERE session_id = $1 FOR UPDATE"

# The buffered writes, as data-modifying CTEs of one statement. session_state gets ONE update
# per row (PostgreSQL leaves it undefined which of two updates of a row in one statement wins).
# $6 is the batch's clock.
_FLUSH_CTES = """\
WITH st AS (
    UPDATE {s}.session_state AS t SET
        next_seq = COALESCE(v.next_seq, t.next_seq),
        round_index = COALESCE(v.round_index, t.round_index),
        pending_json = CASE WHEN v.set_pending THEN v.pending_json ELSE t.pending_json END
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::boolean[], $5::text[])
        AS v(session_id, next_seq, round_index, set_pending, pending_json)
    WHERE t.session_id = v.session_id
), tu AS (
    UPDATE {s}.sessions SET updated_at = $6
    WHERE session_id = ANY($7::text[]) AND updated_at <> $6
), us AS (
    INSERT INTO {s}.usage_rounds (session_id, round_index, prompt_tokens, completion_tokens,
        total_tokens, model, created_at)
    SELECT * FROM unnest($8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
        $13::text[], $14::bigint[])
    ON CONFLICT (session_id, round_index) DO UPDATE SET prompt_tokens = EXCLUDED.prompt_tokens,
        completion_tokens = EXCLUDED.completion_tokens, total_tokens = EXCLUDED.total_tokens,
        model = EXCLUDED.model, created_at = EXCLUDED.created_at
)"""
_INSERT_MESSAGES = """\
INSERT INTO {s}.messages (session_id, seq, role, name, content, tool_calls_json, tool_call_id,
    round_index, meta_json, created_at, position)
SELECT m.session_id, m.seq, m.role, m.name, m.content, m.tool_calls_json, m.tool_call_id,
    m.round_index, m.meta_json, $6, m.seq
FROM unnest($15::text[], $16::bigint[], $17::text[], $18::text[], $19::text[], $20::text[],
    $21::text[], $22::bigint[], $23::text[])
    AS m(session_id, seq, role, name, content, tool_calls_json, tool_call_id, round_index,
        meta_json)"""
_FLUSH = _FLUSH_CTES + "\n" + _INSERT_MESSAGES
# The end of every batch: the last flush, the batch id, and the wake-up (none when $26 is NULL).
_FINISH = (
    _FLUSH_CTES
    + ", ms AS (\n"
    + _INSERT_MESSAGES
    + "\n), bt AS (INSERT INTO {s}.batches (batch_id, committed_at) VALUES ($24, $6))\n"
    + "SELECT pg_notify($25::text, $26::text) WHERE $26::text IS NOT NULL"
)
_NO_STATE: tuple[list[Any], ...] = ([], [], [], [], [])

_CREATE = """\
WITH st AS (INSERT INTO {s}.session_state (session_id) VALUES ($1))
INSERT INTO {s}.sessions (session_id, created_at, updated_at, system_prompt, model, config_json,
    status, kind, parent_session_id, spawn_tool_call_id, spawn_depth, lifecycle, metadata_json)
VALUES ($1, $2, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $11)"""
# KEY SHARE: a concurrent close of the parent (a DELETE) waits until the child is committed.
_PARENT_DEPTH = "SELECT spawn_depth FROM {s}.sessions WHERE session_id = $1 FOR KEY SHARE"
_ARCHIVE = "UPDATE {s}.sessions SET status = $2 WHERE session_id = $1"
_UPDATE_PROMPT = "UPDATE {s}.sessions SET system_prompt = $2 WHERE session_id = $1"

_DOOMED = """\
WITH RECURSIVE doomed(id) AS (
    SELECT session_id FROM {s}.sessions WHERE session_id = $1
    UNION SELECT s.session_id FROM {s}.sessions s JOIN doomed d ON s.parent_session_id = d.id
    WHERE s.lifecycle <> $2
) SELECT id FROM doomed"""
_UNLINK = "UPDATE {s}.sessions SET parent_session_id = NULL WHERE parent_session_id = ANY($1)"
_DELETE_SESSIONS = """\
WITH m AS (DELETE FROM {s}.messages WHERE session_id = ANY($1)),
     c AS (DELETE FROM {s}.compactions WHERE session_id = ANY($1)),
     u AS (DELETE FROM {s}.usage_rounds WHERE session_id = ANY($1)),
     st AS (DELETE FROM {s}.session_state WHERE session_id = ANY($1))
DELETE FROM {s}.sessions WHERE session_id = ANY($1)"""

_COMPACTION_RANGE = """\
SELECT MIN(position), COUNT(*),
    (SELECT last_compact_seq FROM {s}.session_state WHERE session_id = $1)
FROM {s}.messages WHERE session_id = $1 AND state = 'active' AND seq BETWEEN $2 AND $3"""
_COMPACT = """\
WITH out AS (
    UPDATE {s}.messages SET state = 'compacted_out'
    WHERE session_id = $1 AND state = 'active' AND seq BETWEEN $2 AND $3
), note AS (
    INSERT INTO {s}.messages (session_id, seq, role, name, content, tool_calls_json,
        tool_call_id, round_index, state, meta_json, created_at, position)
    VALUES ($1, $4, 'system', 'compact_note', $5, NULL, NULL, $6, 'active', $7, $8, $9)
), audit AS (
    INSERT INTO {s}.compactions (session_id, compact_seq, note_seq, from_seq, to_seq,
        before_tokens, after_tokens, round_index, created_at)
    VALUES ($1, $10, $4, $2, $3, $11, $12, $6, $8)
)
UPDATE {s}.session_state SET last_compact_seq = $10 WHERE session_id = $1"""

_FORK_STATE = (
    "SELECT next_seq, round_index, last_compact_seq, pending_json FROM {s}.session_state "
    "WHERE session_id = $1"
)
_FORK_POINT = "SELECT position, state FROM {s}.messages WHERE session_id = $1 AND seq = $2"
# $1 new, $2 source, $3 now, $4 metadata_json, $5 at_seq, and for a fork at a point
# $6/$7 = (position, seq) of the last message copied. The compactions copied are those whose
# note is among the messages copied (inserted rows are not visible within the statement, so the
# condition is stated on the source). Returns the highest seq and round index copied.
_FORK_COPY = """\
WITH src AS (
    SELECT * FROM {s}.messages WHERE session_id = $2 AND state = 'active' <UPTO>
), ses AS (
    INSERT INTO {s}.sessions (session_id, created_at, updated_at, system_prompt, model,
        config_json, status, kind, parent_session_id, spawn_tool_call_id, spawn_depth,
        lifecycle, metadata_json, forked_from, forked_at_seq)
    SELECT $1, $3, $3, system_prompt, model, config_json, 'active', 'root', NULL, NULL, 0,
        'ephemeral', COALESCE($4, metadata_json), session_id, $5
    FROM {s}.sessions WHERE session_id = $2
), msg AS (
    INSERT INTO {s}.messages (session_id, seq, role, name, content, tool_calls_json,
        tool_call_id, round_index, state, meta_json, created_at, position)
    SELECT $1, seq, role, name, content, tool_calls_json, tool_call_id, round_index, state,
        meta_json, created_at, position FROM src
    RETURNING seq, round_index
), cmp AS (
    INSERT INTO {s}.compactions (session_id, compact_seq, note_seq, from_seq, to_seq,
        before_tokens, after_tokens, round_index, created_at)
    SELECT $1, compact_seq, note_seq, from_seq, to_seq, before_tokens, after_tokens,
        round_index, created_at FROM {s}.compactions
    WHERE session_id = $2 AND note_seq IN (SELECT seq FROM src)
)
SELECT MAX(seq), MAX(round_index) FROM msg"""
_FORK_COPY_ALL = _FORK_COPY.replace("<UPTO>", "")
_FORK_COPY_UPTO = _FORK_COPY.replace("<UPTO>", "AND (position, seq) <= ($6, $7)")
_FORK_INSERT_STATE = (
    "INSERT INTO {s}.session_state (session_id, next_seq, round_index, last_compact_seq, "
    "pending_json) VALUES ($1, $2, $3, $4, $5)"
)

_EXISTING = "SELECT session_id FROM {s}.sessions WHERE session_id = ANY($1::text[])"
_PG_TYPES = {"str": "text", "str|None": "text", "int": "bigint", "int|None": "bigint"}
# Per table of the export format: INSERT … SELECT FROM unnest of one array per column.
_IMPORT = {
    table: (
        f"INSERT INTO {{s}}.{table} ({', '.join(c for c, _ in columns)}) SELECT * FROM unnest("
        + ", ".join(f"${i}::{_PG_TYPES[kind]}[]" for i, (_, kind) in enumerate(columns, 1))
        + ")"
    )
    for _, table, columns, _ in _TABLES
}

_PRUNE_ARCHIVED = (
    "SELECT session_id FROM {s}.sessions WHERE status = $1 AND updated_at < $2 ORDER BY session_id"
)
_PRUNE_ORPHANS = """\
SELECT s.session_id FROM {s}.sessions s WHERE s.kind = $1 AND s.lifecycle = $2
AND (s.parent_session_id IS NULL OR NOT EXISTS (
    SELECT 1 FROM {s}.sessions p WHERE p.session_id = s.parent_session_id))
ORDER BY s.session_id"""
# Compaction notes stay even when a later compaction swallowed them (see _maintenance.Prune).
_PRUNE_COMPACTED = """\
DELETE FROM {s}.messages WHERE state = $1 AND created_at < $2
AND NOT (role = 'system' AND name IS NOT DISTINCT FROM 'compact_note')"""


def _rowcount(status: str) -> int:
    # asyncpg returns the command tag, e.g. "DELETE 3".
    return int(status.rsplit(" ", 1)[-1])


class _Batch:
    """What handlers see of the open transaction: the connection, the clock, seqs, buffers."""

    __slots__ = (
        "conn",
        "dirty",
        "max_spawn_depth",
        "messages",
        "next_seq",
        "now",
        "pending",
        "rounds",
        "schema",
        "touched",
        "usage",
    )

    def __init__(self, conn: Any, schema: str, now: int, max_spawn_depth: int) -> None:
        self.conn = conn
        self.schema = schema
        self.now = now
        self.max_spawn_depth = max_spawn_depth
        # session_id -> next free seq, or None when the session does not exist.
        self.next_seq: dict[str, int | None] = {}
        self.dirty: set[str] = set()
        self.touched: set[str] = set()
        # Buffered writes; the last value per key wins, as it would applied one by one.
        self.rounds: dict[str, int] = {}
        self.pending: dict[str, str | None] = {}
        self.usage: dict[tuple[str, int], tuple[Any, ...]] = {}
        # (session_id, seq, role, name, content, tool_calls_json, tool_call_id, round_index,
        #  meta_json) per appended message.
        self.messages: list[tuple[Any, ...]] = []

    def sql(self, template: str) -> str:
        return render(template, self.schema)

    async def lock(self, session_ids: list[str]) -> None:
        """Lock the sessions' state rows in session-id order and learn their ``next_seq``."""
        if not session_ids:
            return
        found = {r[0]: r[1] for r in await self.conn.fetch(self.sql(_LOCK), session_ids)}
        for sid in session_ids:
            self.next_seq[sid] = found.get(sid)

    async def lookup(self, session_id: str) -> int | None:
        try:
            return self.next_seq[session_id]
        except KeyError:
            found: int | None = await self.conn.fetchval(self.sql(_LOOKUP), session_id)
            self.next_seq[session_id] = found
            return found

    async def require(self, session_id: str) -> int:
        """The session's next free seq; :class:`SessionNotFound` unless it exists."""
        seq = await self.lookup(session_id)
        if seq is None:
            raise SessionNotFound(session_id)
        return seq

    async def take_seqs(self, session_id: str, count: int = 1) -> int:
        """Allocate *count* consecutive seqs and return the first."""
        first = await self.require(session_id)
        self.next_seq[session_id] = first + count
        self.dirty.add(session_id)
        return first

    def forget(self, session_ids: Iterable[str]) -> None:
        for sid in session_ids:
            self.next_seq[sid] = None
            self.dirty.discard(sid)
            self.touched.discard(sid)

    def _flush_args(self) -> list[Any] | None:
        """The arguments of the buffered writes ($1…$23), or None when nothing is buffered."""
        if not (self.dirty or self.touched or self.rounds or self.pending or self.usage) and (
            not self.messages
        ):
            return None
        state_ids = list(self.dirty | self.rounds.keys() | self.pending.keys())
        state: tuple[list[Any], ...] = _NO_STATE
        if state_ids:
            state = (
                state_ids,
                [self.next_seq[sid] if sid in self.dirty else None for sid in state_ids],
                [self.rounds.get(sid) for sid in state_ids],
                [sid in self.pending for sid in state_ids],
                [self.pending.get(sid) for sid in state_ids],
            )
        usage = list(zip(*self.usage.values(), strict=True)) if self.usage else [()] * 7
        messages = list(zip(*self.messages, strict=True)) if self.messages else [()] * 9
        args = [*state, self.now, list(self.touched), *usage, *messages]
        self.dirty = set()
        self.touched = set()
        self.rounds = {}
        self.pending = {}
        self.usage = {}
        self.messages = []
        return args

    async def flush(self) -> None:
        """Write everything buffered. Ops that read what buffered writes touch call this first."""
        args = self._flush_args()
        if args is not None:
            await self.conn.execute(self.sql(_FLUSH), *args)

    async def finish(self, batch_id: str, channel: str, payload: str | None) -> None:
        """The last flush, the batch id and the notification, in one round trip."""
        args = self._flush_args() or [*_NO_STATE, self.now, [], *[()] * 16]
        await self.conn.execute(self.sql(_FINISH), *args, batch_id, channel, payload)

    def reset(self) -> None:
        """Drop caches and buffers after a rollback."""
        self.next_seq.clear()
        self.dirty.clear()
        self.touched.clear()
        self.rounds.clear()
        self.pending.clear()
        self.usage.clear()
        self.messages.clear()


# --- handlers: one per op type; each raises InvalidArgument only before it writes anything ---


async def _create(b: _Batch, op: CreateSession) -> str:
    depth = 0
    kind = op.kind_value
    if op.parent_session_id is not None:
        parent_depth = await b.conn.fetchval(b.sql(_PARENT_DEPTH), op.parent_session_id)
        if parent_depth is None:
            raise SessionNotFound(op.parent_session_id, "parent session")
        depth = parent_depth + 1
        if depth > b.max_spawn_depth:
            raise SpawnDepthExceeded(op.parent_session_id, depth, b.max_spawn_depth)
        kind = SessionKind.SUBAGENT.value
    if await b.lookup(op.session_id) is not None:
        raise SessionExists(op.session_id)
    await b.conn.execute(
        b.sql(_CREATE),
        op.session_id, b.now, op.system_prompt, op.model, op.config_json, kind,
        op.parent_session_id, op.spawn_tool_call_id, depth, op.lifecycle, op.metadata_json,
    )  # fmt: skip
    b.next_seq[op.session_id] = 1
    return op.session_id


async def _archive(b: _Batch, op: ArchiveSession) -> None:
    await b.require(op.session_id)
    await b.conn.execute(b.sql(_ARCHIVE), op.session_id, SessionStatus.ARCHIVED.value)
    b.touched.add(op.session_id)


async def _update_prompt(b: _Batch, op: UpdateSessionPrompt) -> None:
    await b.require(op.session_id)
    await b.conn.execute(b.sql(_UPDATE_PROMPT), op.session_id, op.system_prompt)
    b.touched.add(op.session_id)


async def _close_session(b: _Batch, session_id: str, cascade: bool) -> int:
    await b.flush()
    if cascade:
        # The session and every descendant reached through non-detached links.
        rows = await b.conn.fetch(b.sql(_DOOMED), session_id, SubagentLifecycle.DETACHED.value)
        doomed = [r[0] for r in rows]
    else:
        doomed = [session_id] if await b.lookup(session_id) is not None else []
    if not doomed:
        return 0
    # Survivors (detached children, or every child without cascade) become roots of their own
    # rather than pointing at a session that no longer exists.
    await b.conn.execute(b.sql(_UNLINK), doomed)
    await b.conn.execute(b.sql(_DELETE_SESSIONS), doomed)
    b.forget(doomed)
    return len(doomed)


async def _close(b: _Batch, op: CloseSession) -> int:
    return await _close_session(b, op.session_id, op.cascade)


async def _append(b: _Batch, op: AppendMessage) -> int:
    sid = op.session_id
    seq = await b.take_seqs(sid)
    b.messages.append((sid, seq, *op.params[1:]))
    b.touched.add(sid)
    return seq


async def _append_many(b: _Batch, op: AppendMessages) -> list[int]:
    sid = op.session_id
    first = await b.take_seqs(sid, len(op.rows))
    b.messages.extend((sid, seq, *row) for seq, row in enumerate(op.rows, first))
    b.touched.add(sid)
    return list(range(first, first + len(op.rows)))


async def _compact(b: _Batch, op: RecordCompaction) -> tuple[int, int]:
    sid = op.session_id
    await b.flush()
    next_seq = await b.require(sid)
    if op.to_seq >= next_seq:
        raise InvalidCompactionRange(sid, op.from_seq, op.to_seq, f"the last seq is {next_seq - 1}")
    first_position, active, last_compact_seq = await b.conn.fetchrow(
        b.sql(_COMPACTION_RANGE), sid, op.from_seq, op.to_seq
    )
    if not active:
        raise InvalidCompactionRange(sid, op.from_seq, op.to_seq, "no active message in the range")
    compact_seq = last_compact_seq + 1
    note_seq = await b.take_seqs(sid)
    # The note takes the position of the first message it replaces.
    await b.conn.execute(
        b.sql(_COMPACT),
        sid, op.from_seq, op.to_seq, note_seq, op.note_content, op.round_index,
        op.note_meta_json, b.now, first_position, compact_seq, op.before_tokens, op.after_tokens,
    )  # fmt: skip
    b.touched.add(sid)
    return compact_seq, note_seq


async def _set_round_index(b: _Batch, op: SetRoundIndex) -> None:
    round_index, sid = op.params
    await b.require(sid)
    b.rounds[sid] = round_index


async def _set_pending(b: _Batch, op: SetPending) -> None:
    pending_json, sid = op.params
    await b.require(sid)
    b.pending[sid] = pending_json


async def _record_usage(b: _Batch, op: RecordUsage) -> None:
    # (session_id, round_index, prompt, completion, total, model, created_at): an upsert.
    await b.require(op.params[0])
    b.usage[op.params[0], op.params[1]] = op.params


async def _fork(b: _Batch, op: ForkSession) -> str:
    """See :mod:`power_store._fork` for what a fork holds."""
    src, new = op.source, op.session_id
    # Appends to the source earlier in this batch must be part of what is copied.
    await b.flush()
    state = await b.conn.fetchrow(b.sql(_FORK_STATE), src)
    if state is None:
        raise SessionNotFound(src)
    next_seq, round_index, last_compact_seq, pending_json = state
    if op.at_seq is None:
        at_seq = next_seq - 1
        copy: tuple[Any, ...] = (b.sql(_FORK_COPY_ALL), new, src, b.now, op.metadata_json, at_seq)
    else:
        at_seq = op.at_seq
        at = await b.conn.fetchrow(b.sql(_FORK_POINT), src, at_seq)
        if at is None:
            raise InvalidForkPoint(src, at_seq, "no such message")
        if at[1] != MessageState.ACTIVE.value:
            raise InvalidForkPoint(src, at_seq, "the message was compacted out")
        copy = (b.sql(_FORK_COPY_UPTO), new, src, b.now, op.metadata_json, at_seq, at[0], at_seq)
        pending_json = None
    if await b.lookup(new) is not None:
        raise SessionExists(new)
    last_seq, max_round = await b.conn.fetchrow(*copy)
    if op.at_seq is not None:
        next_seq = max(at_seq, last_seq or 0) + 1
        round_index = max_round or 0
    # last_compact_seq is kept so the fork's own compactions never reuse a copied number.
    await b.conn.execute(
        b.sql(_FORK_INSERT_STATE), new, next_seq, round_index, last_compact_seq, pending_json
    )
    b.next_seq[new] = next_seq
    return new


async def _import(b: _Batch, op: ImportSessions) -> list[str]:
    """See :mod:`power_store._export`: rows recreated exactly, "replace" drops the old ones."""
    await b.flush()
    found = {r[0] for r in await b.conn.fetch(b.sql(_EXISTING), op.ids)}
    existing = [sid for sid in op.ids if sid in found]
    if existing and op.on_conflict == "error":
        raise SessionExists(existing[0])
    if existing:
        # Only the imported sessions' rows go; their children not in the export stay.
        await b.conn.execute(b.sql(_DELETE_SESSIONS), existing)
    for _, table, _columns, _ in _TABLES:
        rows = op.rows[table]
        if rows:
            await b.conn.execute(b.sql(_IMPORT[table]), *(list(c) for c in zip(*rows, strict=True)))
    for row in op.rows["session_state"]:
        b.next_seq[row[0]] = row[1]
    return list(op.ids)


async def _prune(b: _Batch, op: Prune) -> PruneResult:
    """See :class:`power_store._maintenance.Prune`."""
    await b.flush()
    doomed: list[str] = []
    if op.archived_before is not None:
        rows = await b.conn.fetch(
            b.sql(_PRUNE_ARCHIVED), SessionStatus.ARCHIVED.value, op.archived_before
        )
        doomed += [r[0] for r in rows]
    if op.orphaned_subagents:
        rows = await b.conn.fetch(
            b.sql(_PRUNE_ORPHANS), SessionKind.SUBAGENT.value, SubagentLifecycle.EPHEMERAL.value
        )
        doomed += [r[0] for r in rows]
    # Each goes the way close_session would take it: with its non-detached descendants.
    sessions = 0
    for sid in doomed:
        sessions += await _close_session(b, sid, cascade=True)
    messages = 0
    if op.compacted_before is not None:
        status = await b.conn.execute(
            b.sql(_PRUNE_COMPACTED), MessageState.COMPACTED_OUT.value, op.compacted_before
        )
        messages = _rowcount(status)
    return PruneResult(sessions, messages)


_Handler = Callable[[_Batch, Any], Awaitable[Any]]
_HANDLERS: dict[type[WriteOp], _Handler] = {
    CreateSession: _create,
    ArchiveSession: _archive,
    UpdateSessionPrompt: _update_prompt,
    CloseSession: _close,
    AppendMessage: _append,
    AppendMessages: _append_many,
    RecordCompaction: _compact,
    SetRoundIndex: _set_round_index,
    SetPending: _set_pending,
    RecordUsage: _record_usage,
    ForkSession: _fork,
    ImportSessions: _import,
    Prune: _prune,
}
# Ops after which every watcher must look: they delete or replace sessions wholesale.
_WAKE_ALL = (CloseSession, Prune, ImportSessions)
# Ops that create a session: a unique violation in them means another writer created it first.
_CREATES = (CreateSession, ForkSession, ImportSessions)


def _lock_ids(ops: Sequence[WriteOp]) -> list[str]:
    ids: set[str] = set()
    for op in ops:
        if isinstance(op, ImportSessions):
            ids.update(op.ids)
        elif isinstance(op, ForkSession):
            ids.update((op.source, op.session_id))
        elif not isinstance(op, Prune):
            ids.add(op.session_id)
    # PostgreSQL text cannot hold NUL: no such session exists, and the id may not be sent.
    return sorted(sid for sid in ids if "\x00" not in sid)


def notify_payload(ops: Sequence[WriteOp], outcomes: Sequence[Outcome]) -> str | None:
    """The comma-joined ids of the sessions the batch wrote; ``*`` to wake every watcher;
    ``None`` when the batch wrote nothing."""
    ids: set[str] = set()
    for op, (error, _) in zip(ops, outcomes, strict=True):
        if error is None:
            if isinstance(op, _WAKE_ALL):
                return "*"
            ids.add(op.session_id)
    if not ids:
        return None
    payload = ",".join(sorted(ids))
    # An id with a comma would be split into others by the listener.
    if "," in "".join(ids) or len(payload.encode()) > NOTIFY_PAYLOAD_LIMIT:
        return "*"
    return payload


async def _apply_fast(b: _Batch, ops: Sequence[WriteOp]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for op in ops:
        try:
            outcomes.append((None, await _HANDLERS[type(op)](b, op)))
        except InvalidArgument as exc:
            # Raised before the op wrote or buffered anything: nothing to undo.
            outcomes.append((exc, None))
    return outcomes


async def _apply_isolated(b: _Batch, ops: Sequence[WriteOp]) -> list[Outcome]:
    conn = b.conn
    outcomes: list[Outcome] = []
    for op in ops:
        await conn.execute("SAVEPOINT op")
        try:
            value = await _HANDLERS[type(op)](b, op)
            await b.flush()
        except Exception as exc:
            if is_environmental(exc) or is_retryable(exc):
                raise
            await conn.execute("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op")
            b.reset()
            created = op.session_id if isinstance(op, _CREATES) else None
            outcomes.append((map_error(exc, created), None))
        else:
            await conn.execute("RELEASE SAVEPOINT op")
            outcomes.append((None, value))
    return outcomes


async def _rollback(conn: Any) -> None:
    """Roll back after a failure; the original error is what the caller needs to see."""
    if conn.is_closed() or not conn.is_in_transaction():
        return
    with contextlib.suppress(Exception):
        await conn.execute("ROLLBACK")


async def _transaction(
    conn: Any,
    schema: str,
    ops: Sequence[WriteOp],
    max_spawn_depth: int,
    batch_id: str,
    channel: str,
) -> list[Outcome]:
    b = _Batch(conn, schema, time.time_ns() // 1_000_000, max_spawn_depth)
    lock_ids = _lock_ids(ops)
    await conn.execute("BEGIN")
    try:
        try:
            await b.lock(lock_ids)
            outcomes = await _apply_fast(b, ops)
            await b.finish(batch_id, channel, notify_payload(ops, outcomes))
        except Exception as exc:
            if is_environmental(exc) or is_retryable(exc):
                raise
            await conn.execute("ROLLBACK")
            b.reset()
            await conn.execute("BEGIN")
            await b.lock(lock_ids)
            outcomes = await _apply_isolated(b, ops)
            await b.finish(batch_id, channel, notify_payload(ops, outcomes))
    except BaseException:
        await _rollback(conn)
        raise
    try:
        status = await conn.execute("COMMIT")
    except Exception as exc:
        if is_connection_lost(exc):
            raise ConnectionLost(
                f"connection lost during COMMIT of batch {batch_id}: {exc}",
                batch_id=batch_id,
                outcomes=outcomes,
            ) from exc
        raise
    if status != "COMMIT":
        # PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, not an error.
        raise DatabaseError(f"batch {batch_id} was rolled back at COMMIT", sqlstate="40000")
    return outcomes


async def run_batch(
    conn: Any,
    schema: str,
    ops: Sequence[WriteOp],
    *,
    max_spawn_depth: int,
    batch_id: str,
    channel: str,
) -> list[Outcome]:
    """Apply *ops* in one transaction on *conn* and report each op's outcome, in order.

    *batch_id* is recorded in the transaction (see :func:`._appends.committed`); *channel* is the
    NOTIFY channel told which sessions the batch wrote. Failures that belong to the whole batch
    come back as the same kind of typed error for every op. Raises only
    :class:`ConnectionLost` (the caller reconnects; see its ``outcomes``) and cancellation.
    """
    attempt = 0
    while True:
        try:
            return await _transaction(conn, schema, ops, max_spawn_depth, batch_id, channel)
        except ConnectionLost:
            raise
        except Exception as exc:
            # A closed connection explains any error (asyncpg also reports a connection that
            # died mid-operation as "cannot switch to state …", which no class marks as lost).
            if is_connection_lost(exc) or conn.is_closed():
                raise ConnectionLost(
                    f"connection lost before COMMIT of batch {batch_id}: {exc}", batch_id=batch_id
                ) from exc
            if is_retryable(exc) and attempt < RETRIES:
                attempt += 1
                # Jittered, growing: two writers that deadlocked should not collide again.
                await asyncio.sleep(random.uniform(0.002, 0.01) * attempt)
                continue
            # One error object per caller: a shared one would collect every caller's
            # traceback as each of them re-raises it.
            return [(map_error(exc), None) for _ in ops]
