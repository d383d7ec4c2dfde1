"""load_messages on SQLite: the view's keyset queries, driving :func:`power_store._paging.window`
in one read transaction."""

from __future__ import annotations

import sqlite3
from typing import Any

from .._models import MessageRow
from .._paging import Anchor, Key, Keyed, Request, window
from .._rows import MESSAGE_COLUMNS, message_row
from ._queries import fetch_in_one_step
from ._snapshot import snapshot


class _View:
    """The SQL pieces of one view (active or all), all constants."""

    def __init__(self, include_compacted: bool) -> None:
        self.k1 = "seq" if include_compacted else "position"
        state = "" if include_compacted else " AND state = 'active'"
        self.columns = f"{MESSAGE_COLUMNS}, {self.k1}"
        self.select = f"SELECT {self.columns} FROM messages WHERE session_id = ?{state}"

    def answer(self, conn: sqlite3.Connection, session_id: str, request: Request) -> Any:
        if isinstance(request, Anchor):
            return self.anchor(conn, session_id, request.seq)
        return self.fetch(
            conn, session_id, request.after, request.before, request.limit, request.backwards
        )

    @staticmethod
    def anchor(conn: sqlite3.Connection, session_id: str, seq: int) -> Key:
        r = conn.execute(
            "SELECT position FROM messages WHERE session_id = ? AND seq = ?", (session_id, seq)
        ).fetchone()
        return (seq if r is None or r[0] is None else r[0]), seq

    def fetch(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        after: Key | None,
        before: Key | None,
        limit: int | None,
        backwards: bool,
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
    steps = window(after_seq, before_seq, limit, tail, include_compacted)
    with snapshot(conn):
        try:
            request = next(steps)
            while True:
                request = steps.send(view.answer(conn, session_id, request))
        except StopIteration as done:
            rows: list[Keyed] = done.value
    return [message_row(r) for r in rows]
