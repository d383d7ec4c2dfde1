"""Token usage sums on SQLite."""

from __future__ import annotations

import sqlite3

from .._errors import SessionNotFound
from .._usage import UsageTotals, totals
from ._snapshot import snapshot

# The subtree follows parent links whatever the lifecycle: a detached child that still points
# at its parent is still work done on its behalf.
_SUBTREE = (
    "WITH RECURSIVE tree(id) AS (SELECT ? UNION "
    "SELECT s.session_id FROM sessions s JOIN tree ON s.parent_session_id = tree.id) "
)
_SUMS = (
    "SELECT model, COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
    "COALESCE(SUM(total_tokens), 0), COUNT(*) "
    "FROM usage_rounds WHERE session_id IN tree GROUP BY model ORDER BY model"
)
_SINGLE = "WITH tree(id) AS (SELECT ?) "


def usage_totals(conn: sqlite3.Connection, session_id: str, include_subagents: bool) -> UsageTotals:
    with snapshot(conn):
        found = conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,))
        if found.fetchone() is None:
            raise SessionNotFound(session_id)
        rows = conn.execute(
            (_SUBTREE if include_subagents else _SINGLE) + _SUMS, (session_id,)
        ).fetchall()
    return totals(session_id, rows)
