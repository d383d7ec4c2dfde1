"""Reading a session tree out as export lines (the format is :mod:`power_store._export`)."""

from __future__ import annotations

import sqlite3

from .._errors import SessionNotFound
from .._export import TABLES, header_line, record_line
from ._snapshot import snapshot


def export_lines(conn: sqlite3.Connection, session_id: str, include_subagents: bool) -> list[str]:
    """Every line of an export, read in one snapshot."""
    with snapshot(conn):
        if include_subagents:
            # Parents before children (depth first), then a stable order within a level.
            ids = [
                r[0]
                for r in conn.execute(
                    "WITH RECURSIVE tree(id) AS (SELECT ? UNION SELECT s.session_id "
                    "FROM sessions s JOIN tree ON s.parent_session_id = tree.id) "
                    "SELECT session_id FROM sessions WHERE session_id IN tree "
                    "ORDER BY spawn_depth, created_at, session_id",
                    (session_id,),
                )
            ]
        else:
            found = conn.execute(
                "SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            ids = [session_id] if found else []
        if not ids:
            raise SessionNotFound(session_id)
        lines = [header_line(session_id, len(ids))]
        for kind, table, columns, order in TABLES:
            names = [c for c, _ in columns]
            sql = f"SELECT {', '.join(names)} FROM {table} WHERE session_id = ?"
            if order:
                sql += f" ORDER BY {order}"
            for sid in ids:
                lines.extend(record_line(kind, names, row) for row in conn.execute(sql, (sid,)))
    return lines
