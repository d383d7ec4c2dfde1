"""How each write op is applied inside a SQLite batch (see :mod:`._batch`).

Contract with the batch: a handler raises :class:`InvalidArgument` only *before* it has written
or buffered anything, so a rejected op needs no rollback. Table and column names in SQL text
come from constants here and in :mod:`power_store._export`, never from input.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import (
    InvalidCompactionRange,
    InvalidForkPoint,
    SessionExists,
    SessionNotFound,
    SpawnDepthExceeded,
)
from .._export import CHILD_TABLES, TABLE_COLUMNS
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

if TYPE_CHECKING:
    from ._batch import Batch

_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, role, name, content, tool_calls_json, "
    "tool_call_id, round_index, state, meta_json, created_at, position) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)"
)
_SET_ROUND_INDEX = "UPDATE session_state SET round_index = ? WHERE session_id = ?"
_SET_PENDING = "UPDATE session_state SET pending_json = ? WHERE session_id = ?"
_UPSERT_USAGE = (
    "INSERT OR REPLACE INTO usage_rounds (session_id, round_index, prompt_tokens, "
    "completion_tokens, total_tokens, model, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_COPY_MESSAGES = (
    "INSERT INTO messages (session_id, seq, role, name, content, tool_calls_json, "
    "tool_call_id, round_index, state, meta_json, created_at, position) "
    "SELECT ?, seq, role, name, content, tool_calls_json, tool_call_id, round_index, state, "
    "meta_json, created_at, position FROM messages WHERE session_id = ? AND state = 'active'"
)


def create_session(batch: Batch, op: CreateSession) -> str:
    conn = batch.conn
    depth = 0
    kind = op.kind_value
    if op.parent_session_id is not None:
        r = conn.execute(
            "SELECT spawn_depth FROM sessions WHERE session_id = ?",
            (op.parent_session_id,),
        ).fetchone()
        if r is None:
            raise SessionNotFound(op.parent_session_id, "parent session")
        depth = r[0] + 1
        if depth > batch.max_spawn_depth:
            raise SpawnDepthExceeded(op.parent_session_id, depth, batch.max_spawn_depth)
        kind = SessionKind.SUBAGENT.value
    exists = conn.execute(
        "SELECT 1 FROM sessions WHERE session_id = ?", (op.session_id,)
    ).fetchone()
    if exists is not None:
        raise SessionExists(op.session_id)
    conn.execute(
        "INSERT INTO sessions (session_id, created_at, updated_at, system_prompt, model, "
        "config_json, status, kind, parent_session_id, spawn_tool_call_id, spawn_depth, "
        "lifecycle, metadata_json) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?)",
        (
            op.session_id, batch.now, batch.now, op.system_prompt, op.model,
            op.config_json, kind, op.parent_session_id, op.spawn_tool_call_id,
            depth, op.lifecycle, op.metadata_json,
        ),
    )  # fmt: skip
    conn.execute("INSERT INTO session_state (session_id) VALUES (?)", (op.session_id,))
    batch.created(op.session_id)
    return op.session_id


def archive_session(batch: Batch, op: ArchiveSession) -> None:
    batch.require(op.session_id)
    batch.conn.execute(
        "UPDATE sessions SET status = ? WHERE session_id = ?",
        (SessionStatus.ARCHIVED.value, op.session_id),
    )
    batch.touch(op.session_id)


def update_session_prompt(batch: Batch, op: UpdateSessionPrompt) -> None:
    batch.require(op.session_id)
    batch.conn.execute(
        "UPDATE sessions SET system_prompt = ? WHERE session_id = ?",
        (op.system_prompt, op.session_id),
    )
    batch.touch(op.session_id)


def close_session(batch: Batch, op: CloseSession) -> int:
    conn = batch.conn
    batch.flush()
    if op.cascade:
        # The session and every descendant reached through non-detached links.
        doomed = [
            r[0]
            for r in conn.execute(
                "WITH RECURSIVE doomed(id) AS (SELECT session_id FROM sessions "
                "WHERE session_id = ? UNION SELECT s.session_id FROM sessions s "
                "JOIN doomed d ON s.parent_session_id = d.id WHERE s.lifecycle != ?) "
                "SELECT id FROM doomed",
                (op.session_id, SubagentLifecycle.DETACHED.value),
            )
        ]
    else:
        found = conn.execute(
            "SELECT 1 FROM sessions WHERE session_id = ?", (op.session_id,)
        ).fetchone()
        doomed = [op.session_id] if found else []
    if not doomed:
        return 0
    ids = [(sid,) for sid in doomed]
    # Survivors (detached children, or every child without cascade) become roots of their
    # own rather than pointing at a session that no longer exists.
    conn.executemany(
        "UPDATE sessions SET parent_session_id = NULL WHERE parent_session_id = ?", ids
    )
    for table in CHILD_TABLES:
        conn.executemany(f"DELETE FROM {table} WHERE session_id = ?", ids)
    batch.forget(doomed)
    return len(doomed)


def append_message(batch: Batch, op: AppendMessage) -> int:
    p = op.params
    sid = op.session_id
    seq = batch.take_seqs(sid)
    batch.buffer(
        _INSERT_MESSAGE, (sid, seq, p[1], p[2], p[3], p[4], p[5], p[6], p[7], batch.now, seq)
    )
    batch.touch(sid)
    return seq


def append_messages(batch: Batch, op: AppendMessages) -> list[int]:
    sid = op.session_id
    first = batch.take_seqs(sid, len(op.rows))
    now = batch.now
    for seq, p in enumerate(op.rows, first):
        batch.buffer(
            _INSERT_MESSAGE, (sid, seq, p[0], p[1], p[2], p[3], p[4], p[5], p[6], now, seq)
        )
    batch.touch(sid)
    return list(range(first, first + len(op.rows)))


def record_compaction(batch: Batch, op: RecordCompaction) -> tuple[int, int]:
    conn = batch.conn
    sid = op.session_id
    batch.flush()
    next_seq = batch.peek_next_seq(sid)
    if op.to_seq >= next_seq:
        raise InvalidCompactionRange(sid, op.from_seq, op.to_seq, f"the last seq is {next_seq - 1}")
    first_position, active = conn.execute(
        "SELECT MIN(position), COUNT(*) FROM messages "
        "WHERE session_id = ? AND state = 'active' AND seq BETWEEN ? AND ?",
        (sid, op.from_seq, op.to_seq),
    ).fetchone()
    if not active:
        raise InvalidCompactionRange(sid, op.from_seq, op.to_seq, "no active message in the range")
    compact_seq = (
        conn.execute(
            "SELECT last_compact_seq FROM session_state WHERE session_id = ?", (sid,)
        ).fetchone()[0]
        + 1
    )
    note_seq = batch.take_seqs(sid)
    conn.execute(
        "UPDATE messages SET state = ? "
        "WHERE session_id = ? AND state = 'active' AND seq BETWEEN ? AND ?",
        (MessageState.COMPACTED_OUT.value, sid, op.from_seq, op.to_seq),
    )
    conn.execute(
        _INSERT_MESSAGE,
        (
            sid, note_seq, "system", "compact_note", op.note_content, None, None,
            op.round_index, op.note_meta_json, batch.now, first_position,
        ),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO compactions (session_id, compact_seq, note_seq, from_seq, to_seq, "
        "before_tokens, after_tokens, round_index, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sid, compact_seq, note_seq, op.from_seq, op.to_seq, op.before_tokens,
            op.after_tokens, op.round_index, batch.now,
        ),
    )  # fmt: skip
    conn.execute(
        "UPDATE session_state SET last_compact_seq = ? WHERE session_id = ?",
        (compact_seq, sid),
    )
    batch.touch(sid)
    return compact_seq, note_seq


def fork_session(batch: Batch, op: ForkSession) -> str:
    conn = batch.conn
    src, new = op.source, op.session_id
    # Appends to the source earlier in this batch must be part of what is copied.
    batch.flush()
    state = conn.execute(
        "SELECT next_seq, round_index, last_compact_seq, pending_json FROM session_state "
        "WHERE session_id = ?",
        (src,),
    ).fetchone()
    if state is None:
        raise SessionNotFound(src)
    next_seq, round_index, last_compact_seq, pending_json = state
    copy_sql = _COPY_MESSAGES
    copy_params: list[object] = [new, src]
    if op.at_seq is None:
        at_seq = next_seq - 1
    else:
        at_seq = op.at_seq
        at = conn.execute(
            "SELECT position, state FROM messages WHERE session_id = ? AND seq = ?",
            (src, at_seq),
        ).fetchone()
        if at is None:
            raise InvalidForkPoint(src, at_seq, "no such message")
        if at[1] != "active":
            raise InvalidForkPoint(src, at_seq, "the message was compacted out")
        copy_sql += " AND (position, seq) <= (?, ?)"
        copy_params += [at[0], at_seq]
        pending_json = None
    if conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (new,)).fetchone():
        raise SessionExists(new)
    _insert_fork(conn, batch.now, src, new, at_seq, op.metadata_json)
    conn.execute(copy_sql, copy_params)
    conn.execute(
        "INSERT INTO compactions (session_id, compact_seq, note_seq, from_seq, to_seq, "
        "before_tokens, after_tokens, round_index, created_at) "
        "SELECT ?, compact_seq, note_seq, from_seq, to_seq, before_tokens, after_tokens, "
        "round_index, created_at FROM compactions WHERE session_id = ? "
        "AND note_seq IN (SELECT seq FROM messages WHERE session_id = ?)",
        (new, src, new),
    )
    if op.at_seq is not None:
        last_seq, max_round = conn.execute(
            "SELECT MAX(seq), MAX(round_index) FROM messages WHERE session_id = ?", (new,)
        ).fetchone()
        next_seq = max(at_seq, last_seq or 0) + 1
        round_index = max_round or 0
    # last_compact_seq is kept so the fork's own compactions never reuse a copied number.
    conn.execute(
        "INSERT INTO session_state (session_id, next_seq, round_index, last_compact_seq, "
        "pending_json) VALUES (?, ?, ?, ?, ?)",
        (new, next_seq, round_index, last_compact_seq, pending_json),
    )
    batch.reload([new])
    return new


def _insert_fork(
    conn: sqlite3.Connection,
    now: int,
    src: str,
    new: str,
    at_seq: int,
    metadata_json: str | None,
) -> None:
    conn.execute(
        "INSERT INTO sessions (session_id, created_at, updated_at, system_prompt, model, "
        "config_json, status, kind, parent_session_id, spawn_tool_call_id, spawn_depth, "
        "lifecycle, metadata_json, forked_from, forked_at_seq) "
        "SELECT ?, ?, ?, system_prompt, model, config_json, 'active', 'root', NULL, NULL, 0, "
        "'ephemeral', COALESCE(?, metadata_json), session_id, ? "
        "FROM sessions WHERE session_id = ?",
        (new, now, now, metadata_json, at_seq, src),
    )


def import_sessions(batch: Batch, op: ImportSessions) -> list[str]:
    conn = batch.conn
    batch.flush()
    existing = [
        sid
        for sid in op.ids
        if conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (sid,)).fetchone()
    ]
    if existing and op.on_conflict == "error":
        raise SessionExists(existing[0])
    # "replace": the imported sessions' rows go, and only theirs; children already in the
    # store that are not part of the export are left as they are.
    for table in CHILD_TABLES:
        conn.executemany(f"DELETE FROM {table} WHERE session_id = ?", [(s,) for s in existing])
    for table, names in TABLE_COLUMNS.items():
        marks = ", ".join("?" * len(names))
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", op.rows[table]
        )
    batch.reload(op.ids)
    return list(op.ids)


def prune(batch: Batch, op: Prune) -> PruneResult:
    conn = batch.conn
    batch.flush()
    doomed: list[str] = []
    if op.archived_before is not None:
        # Archiving touches updated_at, and an archived session is not written any more:
        # its updated_at is when it was archived (or last changed after that).
        doomed += [
            r[0]
            for r in conn.execute(
                "SELECT session_id FROM sessions WHERE status = ? AND updated_at < ?",
                (SessionStatus.ARCHIVED.value, op.archived_before),
            )
        ]
    if op.orphaned_subagents:
        # Ephemeral subagents are meant to die with their parent; one whose parent is gone
        # (or was unlinked) has nobody left to close it.
        doomed += [
            r[0]
            for r in conn.execute(
                "SELECT s.session_id FROM sessions s WHERE s.kind = ? AND s.lifecycle = ? "
                "AND (s.parent_session_id IS NULL OR NOT EXISTS ("
                "  SELECT 1 FROM sessions p WHERE p.session_id = s.parent_session_id))",
                (SessionKind.SUBAGENT.value, SubagentLifecycle.EPHEMERAL.value),
            )
        ]
    # Each goes the way close_session would take it: with its non-detached descendants.
    sessions = sum(close_session(batch, CloseSession(sid, cascade=True)) for sid in doomed)
    messages = 0
    if op.compacted_before is not None:
        # Compaction notes stay even when a later compaction swallowed them, and so do the
        # compactions rows: the audit of what was summarised, and when, survives.
        messages = conn.execute(
            "DELETE FROM messages WHERE state = ? AND created_at < ? "
            "AND NOT (role = 'system' AND name IS 'compact_note')",
            (MessageState.COMPACTED_OUT.value, op.compacted_before),
        ).rowcount
    return PruneResult(sessions, messages)


def _buffered(sql: str) -> Callable[[Batch, Any], None]:
    """A one-statement write to an existing session, merged into the batch's executemany."""

    def apply(batch: Batch, op: SetRoundIndex | SetPending | RecordUsage) -> None:
        batch.require(op.session_id)
        batch.buffer(sql, op.params)

    return apply


#: The handler of each op type; the batch looks each op up here.
APPLY: dict[type[WriteOp], Callable[[Batch, Any], Any]] = {
    AppendMessage: append_message,
    AppendMessages: append_messages,
    SetRoundIndex: _buffered(_SET_ROUND_INDEX),
    SetPending: _buffered(_SET_PENDING),
    RecordUsage: _buffered(_UPSERT_USAGE),
    CreateSession: create_session,
    ArchiveSession: archive_session,
    UpdateSessionPrompt: update_session_prompt,
    CloseSession: close_session,
    RecordCompaction: record_compaction,
    ForkSession: fork_session,
    ImportSessions: import_sessions,
    Prune: prune,
}
