"""Token usage summed per session, or over a session and all its subagents."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from ._errors import SessionNotFound
from ._snapshot import snapshot


@dataclass(frozen=True)
class ModelUsage:
    """Token counts of the rounds recorded with one model (a missing count adds 0)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    rounds: int = 0


@dataclass(frozen=True)
class UsageTotals:
    """What :meth:`AsyncSessionStore.usage_totals` returns."""

    session_id: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    #: Usage rows summed: one per (session, round).
    rounds: int
    #: The same sums per model; rounds recorded without a model are under ``None``.
    by_model: dict[str | None, ModelUsage] = field(default_factory=dict)


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
    by_model = {r[0]: ModelUsage(r[1], r[2], r[3], r[4]) for r in rows}
    return UsageTotals(
        session_id=session_id,
        prompt_tokens=sum(m.prompt_tokens for m in by_model.values()),
        completion_tokens=sum(m.completion_tokens for m in by_model.values()),
        total_tokens=sum(m.total_tokens for m in by_model.values()),
        rounds=sum(m.rounds for m in by_model.values()),
        by_model=by_model,
    )
