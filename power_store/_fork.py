"""Forking a session: a new root holding a copy of the source's active history up to a point.

What the fork holds, and why:

* the active messages up to and including ``at_seq`` in logical order, with their ``seq``,
  ``position`` and ``created_at`` unchanged, so a seq means the same message in both sessions;
* the compaction audit rows of the notes it copied (compacted-out originals stay behind: they
  are not part of the active history);
* the state those messages imply — ``next_seq`` right after the last seq copied, the highest
  ``round_index`` among them; ``pending`` tool calls are copied only by a fork of the whole
  history (``at_seq=None``), since a fork at an earlier point has not made those calls;
* the source's system prompt, model, config and metadata (metadata may be replaced);
* no usage rows: tokens were spent by the source, and summing both must not count them twice.

Lineage lives in the ``forked_from`` / ``forked_at_seq`` columns (schema version 2), read with
:meth:`AsyncSessionStore.get_lineage` so that :class:`SessionRow` keeps exactly the fields of
power-loop 0.2.0.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ._batch import Batch
from ._errors import InvalidForkPoint, SessionExists, SessionNotFound
from ._ops import WriteOp


@dataclass(frozen=True)
class Lineage:
    """Where a session came from. Both fields are ``None`` for a session that is not a fork."""

    session_id: str
    #: The session it was forked from (which may since have been deleted).
    forked_from: str | None
    #: The last seq of the source's history the fork copied.
    forked_at_seq: int | None


_COPY_MESSAGES = (
    "INSERT INTO messages (session_id, seq, role, name, content, tool_calls_json, "
    "tool_call_id, round_index, state, meta_json, created_at, position) "
    "SELECT ?, seq, role, name, content, tool_calls_json, tool_call_id, round_index, state, "
    "meta_json, created_at, position FROM messages WHERE session_id = ? AND state = 'active'"
)


class ForkSession(WriteOp):
    __slots__ = ("at_seq", "metadata_json", "session_id", "source")

    def __init__(
        self, source: str, at_seq: int | None, new_session_id: str, metadata_json: str | None
    ) -> None:
        self.source = source
        self.at_seq = at_seq
        self.session_id = new_session_id  # the session the op creates
        self.metadata_json = metadata_json

    def apply(self, batch: Batch) -> str:
        conn = batch.conn
        src, new = self.source, self.session_id
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
        if self.at_seq is None:
            at_seq = next_seq - 1
        else:
            at_seq = self.at_seq
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
        _insert_fork(conn, batch.now, src, new, at_seq, self.metadata_json)
        conn.execute(copy_sql, copy_params)
        conn.execute(
            "INSERT INTO compactions (session_id, compact_seq, note_seq, from_seq, to_seq, "
            "before_tokens, after_tokens, round_index, created_at) "
            "SELECT ?, compact_seq, note_seq, from_seq, to_seq, before_tokens, after_tokens, "
            "round_index, created_at FROM compactions WHERE session_id = ? "
            "AND note_seq IN (SELECT seq FROM messages WHERE session_id = ?)",
            (new, src, new),
        )
        if self.at_seq is not None:
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


def get_lineage(conn: sqlite3.Connection, session_id: str) -> Lineage | None:
    r = conn.execute(
        "SELECT forked_from, forked_at_seq FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    return None if r is None else Lineage(session_id, r[0], r[1])
