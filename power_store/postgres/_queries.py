"""Read queries on PostgreSQL. Each takes a pooled connection and the store's schema name; a
read of several statements runs in one ``REPEATABLE READ READ ONLY`` transaction, so it sees
one snapshot, as on SQLite."""

from __future__ import annotations

from typing import Any

from .._errors import SessionNotFound
from .._export import TABLES, header_line, record_line
from .._models import CompactionRow, Lineage, MessageRow, SessionRow, SessionStateRow
from .._rows import (
    COMPACTION_COLUMNS,
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    STATE_COLUMNS,
    compaction_row,
    message_row,
    session_row,
    state_row,
)
from .._usage import UsageTotals, totals
from ._schema import render

Conn = Any  # asyncpg.Connection (or a pool's proxy of one): asyncpg ships no type hints


def snapshot(conn: Conn) -> Any:
    """One read-only transaction, so every statement of a read sees the same snapshot."""
    return conn.transaction(isolation="repeatable_read", readonly=True)


async def get_session(conn: Conn, schema: str, session_id: str) -> SessionRow | None:
    r = await conn.fetchrow(
        render(f"SELECT {SESSION_COLUMNS} FROM {{s}}.sessions WHERE session_id = $1", schema),
        session_id,
    )
    return None if r is None else session_row(r)


async def list_children(conn: Conn, schema: str, parent_session_id: str) -> list[SessionRow]:
    rows = await conn.fetch(
        render(
            f"SELECT {SESSION_COLUMNS} FROM {{s}}.sessions WHERE parent_session_id = $1 "
            "ORDER BY created_at, session_id",
            schema,
        ),
        parent_session_id,
    )
    return [session_row(r) for r in rows]


async def load_active_messages(conn: Conn, schema: str, session_id: str) -> list[MessageRow]:
    # Logical order: a compaction note carries the position of the first message it replaced.
    rows = await conn.fetch(
        render(
            f"SELECT {MESSAGE_COLUMNS} FROM {{s}}.messages "
            "WHERE session_id = $1 AND state = 'active' ORDER BY position, seq",
            schema,
        ),
        session_id,
    )
    return [message_row(r) for r in rows]


async def load_all_messages(conn: Conn, schema: str, session_id: str) -> list[MessageRow]:
    rows = await conn.fetch(
        render(
            f"SELECT {MESSAGE_COLUMNS} FROM {{s}}.messages WHERE session_id = $1 ORDER BY seq",
            schema,
        ),
        session_id,
    )
    return [message_row(r) for r in rows]


async def get_message(conn: Conn, schema: str, session_id: str, seq: int) -> MessageRow | None:
    r = await conn.fetchrow(
        render(
            f"SELECT {MESSAGE_COLUMNS} FROM {{s}}.messages WHERE session_id = $1 AND seq = $2",
            schema,
        ),
        session_id,
        seq,
    )
    return None if r is None else message_row(r)


async def list_compactions(conn: Conn, schema: str, session_id: str) -> list[CompactionRow]:
    rows = await conn.fetch(
        render(
            f"SELECT {COMPACTION_COLUMNS} FROM {{s}}.compactions WHERE session_id = $1 "
            "ORDER BY compact_seq",
            schema,
        ),
        session_id,
    )
    return [compaction_row(r) for r in rows]


async def get_state(conn: Conn, schema: str, session_id: str) -> SessionStateRow | None:
    r = await conn.fetchrow(
        render(f"SELECT {STATE_COLUMNS} FROM {{s}}.session_state WHERE session_id = $1", schema),
        session_id,
    )
    return None if r is None else state_row(r)


async def get_lineage(conn: Conn, schema: str, session_id: str) -> Lineage | None:
    r = await conn.fetchrow(
        render("SELECT forked_from, forked_at_seq FROM {s}.sessions WHERE session_id = $1", schema),
        session_id,
    )
    return None if r is None else Lineage(session_id, r[0], r[1])


async def messages_after(
    conn: Conn, schema: str, session_id: str, after_seq: int, limit: int
) -> tuple[bool, list[MessageRow]]:
    """Whether the session exists, and its messages past *after_seq* in seq order."""
    async with snapshot(conn):
        exists = await conn.fetchval(
            render("SELECT 1 FROM {s}.session_state WHERE session_id = $1", schema), session_id
        )
        rows = await conn.fetch(
            render(
                f"SELECT {MESSAGE_COLUMNS} FROM {{s}}.messages WHERE session_id = $1 AND seq > $2 "
                "ORDER BY seq LIMIT $3",
                schema,
            ),
            session_id,
            after_seq,
            limit,
        )
    return exists is not None, [message_row(r) for r in rows]


# The subtree follows parent links whatever the lifecycle, as on SQLite.
_SUBTREE = (
    'WITH RECURSIVE tree(id) AS (SELECT $1::text COLLATE "C" UNION '
    "SELECT s.session_id FROM {s}.sessions s JOIN tree ON s.parent_session_id = tree.id) "
)
_SINGLE = 'WITH tree(id) AS (SELECT $1::text COLLATE "C") '
_SUMS = (
    "SELECT model, COALESCE(SUM(prompt_tokens), 0)::bigint, "
    "COALESCE(SUM(completion_tokens), 0)::bigint, COALESCE(SUM(total_tokens), 0)::bigint, "
    "COUNT(*) FROM {s}.usage_rounds WHERE session_id IN (SELECT id FROM tree) "
    "GROUP BY model ORDER BY model NULLS FIRST"
)


async def usage_totals(
    conn: Conn, schema: str, session_id: str, include_subagents: bool
) -> UsageTotals:
    async with snapshot(conn):
        found = await conn.fetchval(
            render("SELECT 1 FROM {s}.sessions WHERE session_id = $1", schema), session_id
        )
        if found is None:
            raise SessionNotFound(session_id)
        rows = await conn.fetch(
            render((_SUBTREE if include_subagents else _SINGLE) + _SUMS, schema), session_id
        )
    return totals(session_id, rows)


async def export_lines(
    conn: Conn, schema: str, session_id: str, include_subagents: bool
) -> list[str]:
    """Every line of an export, read in one snapshot: the same bytes SQLite's export gives."""
    async with snapshot(conn):
        if include_subagents:
            # Parents before children (depth first), then a stable order within a level.
            ids = [
                r[0]
                for r in await conn.fetch(
                    render(
                        _SUBTREE + "SELECT session_id FROM {s}.sessions "
                        "WHERE session_id IN (SELECT id FROM tree) "
                        "ORDER BY spawn_depth, created_at, session_id",
                        schema,
                    ),
                    session_id,
                )
            ]
        else:
            found = await conn.fetchval(
                render("SELECT 1 FROM {s}.sessions WHERE session_id = $1", schema), session_id
            )
            ids = [session_id] if found else []
        if not ids:
            raise SessionNotFound(session_id)
        lines = [header_line(session_id, len(ids))]
        for kind, table, columns, order in TABLES:
            names = [c for c, _ in columns]
            # Table and column names come from the export format's constants only.
            sql = f"SELECT {', '.join(names)} FROM {{s}}.{table} WHERE session_id = $1"
            if order:
                sql += f" ORDER BY {order}"
            statement = render(sql, schema)
            for sid in ids:
                rows = await conn.fetch(statement, sid)
                lines.extend(record_line(kind, names, tuple(row)) for row in rows)
    return lines
