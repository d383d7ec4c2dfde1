"""Read queries. Each runs whole on a reader connection's thread and returns finished rows,
so no cursor (and no WAL snapshot) outlives the call."""

from __future__ import annotations

import sqlite3
from typing import Any

from ._models import (
    CompactionRow,
    MessageRow,
    MessageState,
    SessionKind,
    SessionRow,
    SessionStateRow,
    SessionStatus,
    SubagentLifecycle,
)
from ._validate import decode

SESSION_COLUMNS = (
    "session_id, created_at, updated_at, system_prompt, model, config_json, status, kind, "
    "parent_session_id, spawn_tool_call_id, spawn_depth, lifecycle, metadata_json"
)
MESSAGE_COLUMNS = (
    "session_id, seq, role, name, content, tool_calls_json, tool_call_id, round_index, "
    "state, meta_json, created_at"
)
_COMPACTION_COLUMNS = (
    "session_id, compact_seq, note_seq, from_seq, to_seq, before_tokens, after_tokens, "
    "round_index, created_at"
)


def session_row(r: tuple[Any, ...]) -> SessionRow:
    return SessionRow(
        session_id=r[0],
        created_at=r[1],
        updated_at=r[2],
        system_prompt=r[3],
        model=r[4],
        config=decode(r[5]) or {},
        status=SessionStatus(r[6]),
        kind=SessionKind(r[7]),
        parent_session_id=r[8],
        spawn_tool_call_id=r[9],
        spawn_depth=r[10],
        lifecycle=SubagentLifecycle(r[11]),
        metadata=decode(r[12]) or {},
    )


def message_row(r: tuple[Any, ...]) -> MessageRow:
    return MessageRow(
        session_id=r[0],
        seq=r[1],
        role=r[2],
        name=r[3],
        content=r[4],
        tool_calls=decode(r[5]),
        tool_call_id=r[6],
        round_index=r[7],
        state=MessageState(r[8]),
        meta=decode(r[9]) or {},
        created_at=r[10],
    )


def get_session(conn: sqlite3.Connection, session_id: str) -> SessionRow | None:
    r = conn.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    return None if r is None else session_row(r)


def list_children(conn: sqlite3.Connection, parent_session_id: str) -> list[SessionRow]:
    rows = conn.execute(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = ? "
        "ORDER BY created_at, session_id",
        (parent_session_id,),
    ).fetchall()
    return [session_row(r) for r in rows]


def load_active_messages(conn: sqlite3.Connection, session_id: str) -> list[MessageRow]:
    # Logical order: a compaction note carries the position of the first message it replaced.
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND state = 'active' "
        "ORDER BY position, seq",
        (session_id,),
    ).fetchall()
    return [message_row(r) for r in rows]


def load_all_messages(conn: sqlite3.Connection, session_id: str) -> list[MessageRow]:
    # Every row ever written, in allocation (seq) order: the audit view.
    rows = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ).fetchall()
    return [message_row(r) for r in rows]


def get_message(conn: sqlite3.Connection, session_id: str, seq: int) -> MessageRow | None:
    r = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND seq = ?",
        (session_id, seq),
    ).fetchone()
    return None if r is None else message_row(r)


def list_compactions(conn: sqlite3.Connection, session_id: str) -> list[CompactionRow]:
    rows = conn.execute(
        f"SELECT {_COMPACTION_COLUMNS} FROM compactions WHERE session_id = ? ORDER BY compact_seq",
        (session_id,),
    ).fetchall()
    return [CompactionRow(*r) for r in rows]


def get_state(conn: sqlite3.Connection, session_id: str) -> SessionStateRow | None:
    r = conn.execute(
        "SELECT session_id, next_seq, round_index, last_compact_seq, pending_json "
        "FROM session_state WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    if r is None:
        return None
    return SessionStateRow(
        session_id=r[0],
        next_seq=r[1],
        round_index=r[2],
        last_compact_seq=r[3],
        pending=decode(r[4]),
    )
