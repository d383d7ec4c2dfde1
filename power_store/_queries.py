"""Read queries. Each runs whole on a reader connection's thread and returns finished rows,
so no cursor (and no WAL snapshot) outlives the call."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
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


# Value -> member maps: a dict lookup per row instead of an Enum call (measured ~1 µs each);
# a value not in the map (a damaged file) still gets the Enum's own ValueError.
_STATUS = {m.value: m for m in SessionStatus}
_KIND = {m.value: m for m in SessionKind}
_LIFECYCLE = {m.value: m for m in SubagentLifecycle}
_STATE = {m.value: m for m in MessageState}


def _object(text: str | None) -> dict[str, Any]:
    # Most rows carry the empty object: a fresh dict without a trip through json.
    return {} if text is None or text == "{}" else decode(text) or {}


# Rows are built positionally, in field order (the column lists above follow it): building
# 200 messages was two thirds of a history load, and keyword arguments and Enum calls were
# most of that.
def session_row(r: tuple[Any, ...]) -> SessionRow:
    return SessionRow(
        r[0], r[1], r[2], r[3], r[4], _object(r[5]),
        _STATUS.get(r[6]) or SessionStatus(r[6]),
        _KIND.get(r[7]) or SessionKind(r[7]),
        r[8], r[9], r[10],
        _LIFECYCLE.get(r[11]) or SubagentLifecycle(r[11]),
        _object(r[12]),
    )  # fmt: skip


def message_row(r: Sequence[Any]) -> MessageRow:
    return MessageRow(
        r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6], r[7],
        _STATE.get(r[8]) or MessageState(r[8]),
        _object(r[9]), r[10],
    )  # fmt: skip


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


def fetch_in_one_step(
    conn: sqlite3.Connection, columns: str, select: str, params: Sequence[Any]
) -> list[Any]:
    """Every row of *select* (which returns *columns*), fetched in ONE step: SQLite folds the
    rows into a single JSON array.

    Row by row, sqlite3 gives up the GIL around every step and must win it back for every row,
    and while an event loop and a writer keep the GIL busy each win can take milliseconds:
    measured with W1 running, a 200-message history took p99 14 ms that way against 5 ms in
    one step (idle, one step costs ~30% more: 1.35 ms against 1.05 ms). A value JSON cannot
    hold (a BLOB some other program stored in a text column) falls back to the row-by-row read.
    """
    try:
        # The subquery's ORDER BY is kept: SQLite never flattens an ordered subquery into an
        # aggregate, so the array is built in that order.
        (text,) = conn.execute(
            f"SELECT json_group_array(json_array({columns})) FROM ({select})", params
        ).fetchone()
    except sqlite3.OperationalError:
        return conn.execute(select, params).fetchall()
    rows: list[Any] = json.loads(text)
    return rows


def _messages(conn: sqlite3.Connection, where_order: str, params: tuple[Any, ...]) -> list[Any]:
    select = f"SELECT {MESSAGE_COLUMNS} FROM messages {where_order}"
    return fetch_in_one_step(conn, MESSAGE_COLUMNS, select, params)


def load_active_messages(conn: sqlite3.Connection, session_id: str) -> list[MessageRow]:
    # Logical order: a compaction note carries the position of the first message it replaced.
    rows = _messages(
        conn, "WHERE session_id = ? AND state = 'active' ORDER BY position, seq", (session_id,)
    )
    return [message_row(r) for r in rows]


def load_all_messages(conn: sqlite3.Connection, session_id: str) -> list[MessageRow]:
    # Every row ever written, in allocation (seq) order: the audit view.
    rows = _messages(conn, "WHERE session_id = ? ORDER BY seq", (session_id,))
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
