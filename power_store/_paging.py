"""Windows over a session's history that never split a tool-call group.

A *tool-call group* is an assistant message carrying ``tool_calls`` followed by the run of
``tool`` messages answering it. A model API rejects a history that starts with a tool result
whose call it never saw, or ends with calls that have no results, so a window that would cut
a group is widened to hold the whole group — by at most the group's size on each edge.

Windows are keyset ranges over the view's order: ``(position, seq)`` for the active history
(a compaction note stands where its range stood), plain ``seq`` with ``include_compacted``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ._models import MessageRow
from ._queries import MESSAGE_COLUMNS, fetch_in_one_step, message_row
from ._snapshot import snapshot

# How many neighbours to fetch at a time while widening; groups are rarely larger.
_WIDEN_STEP = 16

Keyed = Sequence[Any]  # a message row with its order key (k1, seq) appended


class _View:
    """The SQL pieces of one view (active or all), all constants."""

    def __init__(self, include_compacted: bool) -> None:
        self.k1 = "seq" if include_compacted else "position"
        self.state = "" if include_compacted else " AND state = 'active'"
        self.columns = f"{MESSAGE_COLUMNS}, {self.k1}"
        self.select = f"SELECT {self.columns} FROM messages WHERE session_id = ?{self.state}"

    def anchor(self, conn: sqlite3.Connection, session_id: str, seq: int) -> tuple[int, int]:
        """The order key of message *seq*; an unknown seq sorts where that seq number would."""
        if self.k1 == "seq":
            return seq, seq
        r = conn.execute(
            "SELECT position FROM messages WHERE session_id = ? AND seq = ?", (session_id, seq)
        ).fetchone()
        return (seq if r is None or r[0] is None else r[0]), seq

    def fetch(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        after: tuple[int, int] | None,
        before: tuple[int, int] | None,
        limit: int | None,
        *,
        backwards: bool = False,
    ) -> list[Keyed]:
        sql = self.select
        params: list[Any] = [session_id]
        if after is not None:
            sql += f" AND ({self.k1}, seq) > (?, ?)"
            params.extend(after)
        if before is not None:
            sql += f" AND ({self.k1}, seq) < (?, ?)"
            params.extend(before)
        direction = "DESC" if backwards else "ASC"
        sql += f" ORDER BY {self.k1} {direction}, seq {direction}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = fetch_in_one_step(conn, self.columns, sql, params)
        if backwards:
            rows.reverse()
        return rows


def _key(row: Keyed) -> tuple[int, int]:
    return row[-1], row[1]


def _is_tool(row: Keyed) -> bool:
    return bool(row[2] == "tool")


def _calls_tools(row: Keyed) -> bool:
    return bool(row[2] == "assistant" and row[5])


def _widen(conn: sqlite3.Connection, view: _View, session_id: str, rows: list[Keyed]) -> None:
    # Back: a window starting inside a group's results reaches back to the assistant message
    # that made the calls (if there is one; a tool result with no caller stays as it is).
    while rows and _is_tool(rows[0]):
        earlier = view.fetch(conn, session_id, None, _key(rows[0]), _WIDEN_STEP, backwards=True)
        if not earlier:
            break
        taken = 0
        for row in reversed(earlier):
            if _is_tool(row):
                taken += 1
                continue
            if _calls_tools(row):
                taken += 1
            break
        if taken == 0:
            break
        rows[:0] = earlier[len(earlier) - taken :]
        if taken < len(earlier) or not _is_tool(rows[0]):
            break
    # Forward: a window ending on the calls, or among their results, takes the rest of them.
    while rows and (_is_tool(rows[-1]) or _calls_tools(rows[-1])):
        later = view.fetch(conn, session_id, _key(rows[-1]), None, _WIDEN_STEP)
        results = []
        for row in later:
            if not _is_tool(row):
                break
            results.append(row)
        rows.extend(results)
        if len(results) < _WIDEN_STEP:
            break


def load_messages(
    conn: sqlite3.Connection,
    session_id: str,
    after_seq: int | None,
    before_seq: int | None,
    limit: int | None,
    tail: int | None,
    include_compacted: bool,
) -> list[MessageRow]:
    view = _View(include_compacted)
    with snapshot(conn):
        after = None if after_seq is None else view.anchor(conn, session_id, after_seq)
        before = None if before_seq is None else view.anchor(conn, session_id, before_seq)
        if tail is not None:
            rows = view.fetch(conn, session_id, after, before, tail, backwards=True)
        else:
            rows = view.fetch(conn, session_id, after, before, limit)
        if limit is not None or tail is not None or after is not None or before is not None:
            _widen(conn, view, session_id, rows)
    return [message_row(r) for r in rows]
